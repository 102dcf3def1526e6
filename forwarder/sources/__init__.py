"""Where CloudTrail objects come from: local files, S3 notifications on SQS, S3 polling."""
