"""Customer.io: settings, client and fake server of the `customerio` type."""
