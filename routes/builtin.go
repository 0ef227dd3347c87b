package routes

import (
	"fmt"

	"github.com/koppelpoort/koppelpoort/transforms"
)

// BuiltinRevision is the revision of a route declared in code: it changes with the binary, not a file.
const BuiltinRevision = "builtin"

// Builtin returns a route declared in code rather than in a route file (the Koppeltaal server's own,
// routes/runtime.NewKoppeltaal): no key, rules or transforms, so every record goes unchanged to every
// output, with retry as its outbound retry policy. Its name must be one of reserved, which no route file may use.
func Builtin(name string, input Component, outputs []Component, retry RetryPolicy) (*Route, error) {
	engine, err := transforms.NewEngine(transforms.Config{})
	if err != nil {
		return nil, fmt.Errorf("built-in route %s: %w", name, err)
	}
	return &Route{Name: name, Description: "built in", File: "(built in)", Revision: BuiltinRevision, Input: input,
		Outputs: outputs, Transforms: map[string]*Transform{}, Retry: retry, FailingAfter: DefaultFailingAfter, engine: engine}, nil
}

// reserved are the names of the built-in routes, which route files may not take (their topic, deliveries
// and dead letters would mix). The Koppeltaal route's is reserved whether or not this process runs it.
var reserved = map[string]bool{"koppeltaal": true}
