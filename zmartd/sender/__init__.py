"""The write side: intents executed on chain exactly once (:mod:`.lifecycle`),
the ``sender`` actor (:mod:`.actor`), its service API (:mod:`.service`) and
the keys it signs with (:mod:`.keys`)."""
