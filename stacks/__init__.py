"""aigw's deployable stacks, one module each."""
