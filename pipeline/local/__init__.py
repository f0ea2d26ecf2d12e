"""The local twin of the AWS side: moto's S3, local Spark and a real PostgreSQL."""
