"""Stand-ins for local runs: the fake vendor, the local token issuer and the process harness that
starts them with the gateway (used by `make gateway-local`, the benchmarks and the tests alike)."""
