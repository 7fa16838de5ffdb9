from zar.cli import main

raise SystemExit(main())
