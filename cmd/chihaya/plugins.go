package main

// Drivers and hooks register themselves by name in init(); importing them
// here is what makes a name usable in the configuration. Adding a hook or
// a driver is one new folder and one line here.
import (
	// Hooks.
	_ "github.com/chihaya/chihaya/middleware/clientapproval"
	_ "github.com/chihaya/chihaya/middleware/eventstream"
	_ "github.com/chihaya/chihaya/middleware/httpapproval"
	_ "github.com/chihaya/chihaya/middleware/jwt"
	_ "github.com/chihaya/chihaya/middleware/ratelimit"
	_ "github.com/chihaya/chihaya/middleware/torrentapproval"
	_ "github.com/chihaya/chihaya/middleware/varinterval"

	// Storage drivers.
	_ "github.com/chihaya/chihaya/storage/memory"
	_ "github.com/chihaya/chihaya/storage/redis"
)
