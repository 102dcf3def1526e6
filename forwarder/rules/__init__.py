"""Sigma rules: generated from the configuration, checked, converted with pySigma, deployed to Splunk."""

# Here rather than in convert.py, so that the command line knows them without loading pySigma.
TARGETS = ("eql", "esql", "lucene", "opensearch", "splunk")
DEFAULT_INDEX = ("cloudtrail-assumerole-*",)
