"""A local Solana chain double for zmartd: an in-memory bank that executes real
signed transactions (system program, compute budget, fees, rent, atomic
rollback, Solana-shaped logs) plus a faithful model of the deployed
zmart-core program, quirks included (``bank``, ``program``).  The node that
serves it over JSON-RPC/PubSub lives next to them."""
