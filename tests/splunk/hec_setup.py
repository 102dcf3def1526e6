"""The HEC test server's tokens and index, shared by the Splunk tests and their fixtures."""

TOKEN = "5c1b4f9e-7d1a-4c0e-9a55-2f3e8b6d0c11"
ACK_TOKEN = "0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b"
INDEX = "aws_cloudtrail"
