"""The SIEM side as installable plugins: a Splunk app and a Kibana content pack, built from the field
catalogue and the Sigma rules so that they cannot drift from either, and `forwarder setup kibana`."""
