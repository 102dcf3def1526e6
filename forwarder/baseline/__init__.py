"""The behaviour baseline: what each subject, role and pair usually does (in the state store),
the flags of what departs from it, and where each session's credentials were issued."""
