from metronome_iac.cli import main

raise SystemExit(main())
