from avail.cli import main

raise SystemExit(main())
