from csms.cli import main

raise SystemExit(main())
