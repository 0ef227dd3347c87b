package strictyaml

import (
	"fmt"
	"os"
	"strings"
)

// Lookup finds an environment variable: its value and whether it is set (os.LookupEnv).
type Lookup func(name string) (string, bool)

// Getenv adapts a getenv-style function (empty means unset) to a Lookup; nil is os.LookupEnv.
func Getenv(getenv func(string) string) Lookup {
	if getenv == nil {
		return os.LookupEnv
	}
	return func(name string) (string, bool) {
		v := getenv(name)
		return v, v != ""
	}
}

// Expand substitutes environment variables in s: the one ${ENV} dialect of every YAML file Koppelpoort
// reads (the configuration file, route files' adapter settings, the tools' files):
//
//   - ${NAME} is the variable's value; a variable that is unset or empty is an error — an empty secret is
//     almost always a deployment mistake (an EnvironmentFile line without a value), and an empty token or
//     password would fail later with a message that no longer names the file;
//   - ${NAME:-default} is the value, or default when the variable is unset or empty (${NAME:-} allows an
//     empty value on purpose); the default is literal text up to the first "}";
//   - $${ is a literal "${" (and is not expanded further); a "$" anywhere else is literal text.
//
// NAME is letters, digits and '_', not starting with a digit. An unclosed or malformed ${ is an error.
func Expand(s string, lookup Lookup) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ → ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q is not closed: write ${NAME} or ${NAME:-default} (or $${ for a literal ${)", s[i:])
		}
		ref := s[i+2 : i+end]
		name, def, hasDefault := strings.Cut(ref, ":-")
		if !validName(name) {
			return "", fmt.Errorf("${%s}: %q is not an environment variable name (letters, digits, _); write $${ for a literal ${", ref, name)
		}
		v, set := lookup(name)
		switch {
		case v != "":
			b.WriteString(v)
		case hasDefault:
			b.WriteString(def)
		case set:
			return "", fmt.Errorf("environment variable %s is empty (use ${%s:-} to allow an empty value)", name, name)
		default:
			return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)
		}
		s = s[i+end+1:]
	}
}

func validName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
