//go:build tools

// Package litewitness pins litewitness (filippo.io/torchwood/cmd/litewitness),
// the ecosystem's tlog-witness, for tests/interop/test_litewitness.py, which
// builds it with `go build filippo.io/torchwood/cmd/litewitness` here.
package litewitness

import (
	_ "filippo.io/torchwood/cmd/litewitness"
	_ "filippo.io/torchwood/cmd/witnessctl"
)
