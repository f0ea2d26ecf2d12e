"""The quality report site: private in its bucket, opened over HTTPS through CloudFront.

CloudFront reads the bucket with origin access control (the bucket stays private) and serves
the reports prefix at the site's root; a CloudFront Function lets only the networks in
``aws.report_allowed_cidrs`` in (no WAF: a CloudFront web ACL must live in us-east-1, in a
stack of its own). Viewers connect over IPv4, so the function sees the address the list names.
The site's address reaches the validation job and the failure alert (``${ReportsUrl}``), so
on-call gets a link that opens. The static files (``make package``'s ``dist/reports``) are
deployed beside the pages the validation runs write, never over them.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from cdk.nag import suppress
from pipeline.settings import Settings

_ALLOW_LIST = """
var ALLOWED = %s;
function address(ip) {
  var parts = ip.split('.');
  if (parts.length !== 4) { return -1; }
  return ((+parts[0] << 24) >>> 0) + (+parts[1] << 16) + (+parts[2] << 8) + (+parts[3]);
}
function handler(event) {
  var ip = address(event.viewer.ip);
  for (var i = 0; i < ALLOWED.length; i++) {
    var mask = ALLOWED[i][1] === 0 ? 0 : (~0 << (32 - ALLOWED[i][1])) >>> 0;
    if (ip >= 0 && ((ip & mask) >>> 0) === ALLOWED[i][0]) { return event.request; }
  }
  return { statusCode: 403, statusDescription: 'Forbidden' };
}
"""


def allow_list_code(cidrs: tuple[str, ...]) -> str:
    """The viewer-request function: the request of an address in ``cidrs``, else a 403."""
    networks = [ipaddress.IPv4Network(cidr) for cidr in cidrs]
    allowed = [[int(n.network_address), n.prefixlen] for n in networks]
    return _ALLOW_LIST % json.dumps(allowed)


class Reports(Construct):
    """The site's distribution and its static files; ``url`` is where it opens."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        bucket: s3.IBucket,
        site: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = settings.storage.reports_prefix
        self.static_files = s3deploy.BucketDeployment(
            self,
            "StaticFiles",
            sources=[s3deploy.Source.asset(str(site))],
            destination_bucket=bucket,
            destination_key_prefix=prefix,
            # The validation runs' pages live under the same prefix.
            prune=False,
        )
        allow = cloudfront.Function(
            self,
            "AllowList",
            code=cloudfront.FunctionCode.from_inline(
                allow_list_code(settings.aws.report_allowed_cidrs)
            ),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="Only the networks of aws.report_allowed_cidrs open the quality reports",
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Site",
            comment=f"flightpipe {settings.env.value}: quality reports",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(
                    bucket, origin_path="/" + prefix.strip("/")
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=allow, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
                # A page is written once; the month's index changes with each validation.
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            ),
            default_root_object="index.html",
            enable_ipv6=False,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        self.url = f"https://{self.distribution.distribution_domain_name}/"
        for rule, reason in (
            (
                "AwsSolutions-CFR1",
                "Access is limited to the allow-listed networks, finer than any country.",
            ),
            (
                "AwsSolutions-CFR2",
                "The allow-list is a CloudFront Function on every request; a WAF web ACL for "
                "CloudFront would need a stack in us-east-1 for this one rule.",
            ),
            (
                "AwsSolutions-CFR3",
                "CloudFront's standard logs need a bucket with ACLs, which every bucket here "
                "disables; the reports bucket's access logs record each read of the origin.",
            ),
            (
                "AwsSolutions-CFR4",
                "The site is served on the distribution's own cloudfront.net name, whose "
                "certificate's TLS policy CloudFront sets; no custom domain is configured.",
            ),
        ):
            suppress(self.distribution, rule, reason)
