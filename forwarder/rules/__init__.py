"""Sigma rules: generated from the configuration, checked, converted with pySigma, deployed to Splunk."""
