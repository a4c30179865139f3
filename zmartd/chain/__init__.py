"""Everything that handles Solana bytes lives in this package.

The interface of the on-chain program ``zmart-core`` is specified in
``docs/chain.md``; the machine-readable layouts are vendored as
``zmartd/chain/spec/layout.json`` so that the installed package does not
depend on the checkout layout.
"""
