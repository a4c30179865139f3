"""The snapshotter: daily canonical-JSON snapshots of every market's discussions, stored
on IPFS (or a local content-addressed store) under a CID computed and verified here."""
