"""MuVi's networks: visual encoders, adaptor, DiT, music encoder (pure tensor functions)."""
