"""flightpipe's CDK app: every AWS resource of the pipeline, one stack per environment.

What each resource is made of (names, job and crawler definitions, event patterns, the state
machines' definitions and their placeholders' values) comes from ``pipeline.deployment`` and
``pipeline.workflow``, which the twin provisions from too; these modules only turn it into
constructs, and wire them (``stack``). ``app`` synthesizes every environment.
"""
