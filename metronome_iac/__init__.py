"""metronome-iac: Metronome usage billing as code (CLI, emulator, catalog, drift, promotion, Stripe tools)."""
