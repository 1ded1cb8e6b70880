from stalwart_py.cli import main

raise SystemExit(main())
