// Package all registers every built-in adapter; import it for its side effect.
package all

import (
	// Built-in adapters register themselves in init().
	_ "github.com/koppelpoort/koppelpoort/adapters/file"
	_ "github.com/koppelpoort/koppelpoort/adapters/http"
	_ "github.com/koppelpoort/koppelpoort/adapters/koppeltaal"
	_ "github.com/koppelpoort/koppelpoort/adapters/mllp"
	_ "github.com/koppelpoort/koppelpoort/adapters/sql"
)
