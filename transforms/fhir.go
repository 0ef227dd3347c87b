package transforms

import (
	"fmt"
	"strings"
)

// KoppeltaalSystemBase is the prefix of Koppeltaal code systems (MessageEvents, CarePlanActivityStatus, ...).
const KoppeltaalSystemBase = "http://ggz.koppeltaal.nl/fhir/Koppeltaal/"

// Gender codes are the DSTU1 AdministrativeGender binding (v3 codes, UNK from NullFlavor).
const (
	genderSystem     = "http://hl7.org/fhir/v3/AdministrativeGender"
	nullFlavorSystem = "http://hl7.org/fhir/v3/NullFlavor"
)

// Reference builds a DSTU1 ResourceReference: reference("Patient", "123") or reference(url).
func Reference(parts ...string) (map[string]any, error) {
	switch len(parts) {
	case 1:
		if strings.TrimSpace(parts[0]) == "" {
			return nil, fmt.Errorf("reference: empty reference")
		}
		return map[string]any{"reference": parts[0]}, nil
	case 2:
		if parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("reference: type and id must not be empty (got %q, %q)", parts[0], parts[1])
		}
		return map[string]any{"reference": parts[0] + "/" + parts[1]}, nil
	}
	return nil, fmt.Errorf("reference: want (url) or (type, id)")
}

// Coding builds a DSTU1 Coding; a system without "://" is taken as a Koppeltaal value set name.
func Coding(system, code string, display ...string) map[string]any {
	if !strings.Contains(system, ":") {
		system = KoppeltaalSystemBase + system
	}
	c := map[string]any{"system": system, "code": code}
	if len(display) > 0 && display[0] != "" {
		c["display"] = display[0]
	} else if strings.HasPrefix(system, KoppeltaalSystemBase) {
		// Koppeltaal messages carry the code as display; clients show it.
		c["display"] = code
	}
	return c
}

// CodeableConcept wraps one Coding.
func CodeableConcept(system, code string, display ...string) map[string]any {
	return map[string]any{"coding": []any{Coding(system, code, display...)}}
}

// HumanName builds an official DSTU1 HumanName from Dutch parts: given names (space separated),
// optional voorvoegsels ("van der") and the family name.
func HumanName(parts ...string) (map[string]any, error) {
	var given, prefix, family string
	switch len(parts) {
	case 2:
		given, family = parts[0], parts[1]
	case 3:
		given, prefix, family = parts[0], parts[1], parts[2]
	default:
		return nil, fmt.Errorf("human_name: want (given, family) or (given, prefix, family)")
	}
	name := map[string]any{"use": "official"}
	var text []string
	if f := strings.Fields(given); len(f) > 0 {
		name["given"] = toAny(f)
		text = append(text, f...)
	}
	if f := strings.Fields(prefix); len(f) > 0 {
		name["prefix"] = toAny(f)
		text = append(text, f...)
	}
	if f := strings.TrimSpace(family); f != "" {
		name["family"] = []any{f}
		text = append(text, f)
	}
	if len(text) == 0 {
		return nil, fmt.Errorf("human_name: all name parts are empty")
	}
	name["text"] = strings.Join(text, " ")
	return name, nil
}

// Gender maps Dutch (M/V/O) and English (M/F/U) gender codes to the DSTU1 gender CodeableConcept.
func Gender(code string) (map[string]any, error) {
	switch strings.ToUpper(strings.TrimSpace(code)) {
	case "M", "MAN", "MALE":
		return CodeableConcept(genderSystem, "M", "Male"), nil
	case "V", "VROUW", "F", "FEMALE":
		return CodeableConcept(genderSystem, "F", "Female"), nil
	case "X", "UN", "ONGEDIFFERENTIEERD":
		return CodeableConcept(genderSystem, "UN", "Undifferentiated"), nil
	case "O", "ONBEKEND", "U", "UNK", "":
		return CodeableConcept(nullFlavorSystem, "UNK", "Unknown"), nil
	}
	return nil, fmt.Errorf("gender: unknown code %q (want M, V, O or X)", code)
}

// Telecom builds a DSTU1 Contact; an empty value gives nil so the field is left out.
func Telecom(system, value string, use ...string) (any, error) {
	switch system {
	case "phone", "fax", "email", "url":
	default:
		return nil, fmt.Errorf("telecom: system %q is not phone, fax, email or url", system)
	}
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, nil
	}
	t := map[string]any{"system": system, "value": v}
	if len(use) > 0 && use[0] != "" {
		t["use"] = use[0]
	}
	return t, nil
}

// Identifier builds a DSTU1 Identifier; system may be a short name ("bsn", "agb") or a URI.
func Identifier(system, value string, use ...string) (map[string]any, error) {
	uri := system
	if !strings.Contains(system, ":") {
		var err error
		if uri, err = SystemURI(system); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(value) == "" {
		return nil, fmt.Errorf("identifier: empty value for system %s", uri)
	}
	id := map[string]any{"system": uri, "value": strings.TrimSpace(value)}
	if len(use) > 0 && use[0] != "" {
		id["use"] = use[0]
	}
	return id, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Extension builds a DSTU1 extension {url, value<Type>: value}; a url without "://" is a Koppeltaal
// extension ("CarePlan#StartDate" → http://ggz.koppeltaal.nl/fhir/Koppeltaal/CarePlan#StartDate).
func Extension(url, valueKey string, value any) (map[string]any, error) {
	if !strings.HasPrefix(valueKey, "value") && valueKey != "extension" {
		return nil, fmt.Errorf("extension: the value key must be value<Type> (valueString, valueCoding, ...) or extension, got %q", valueKey)
	}
	if !strings.Contains(url, "://") {
		url = KoppeltaalSystemBase + url
	}
	return map[string]any{"url": url, valueKey: value}, nil
}

// ExtensionValue returns the value[x] of the first extension of element with the given url (a url without
// "://" is a Koppeltaal extension), or nil. element is a resource or element in DSTU1 JSON form.
func ExtensionValue(element any, url string) any {
	m, ok := element.(map[string]any)
	if !ok {
		return nil
	}
	if !strings.Contains(url, "://") {
		url = KoppeltaalSystemBase + url
	}
	exts, _ := m["extension"].([]any)
	for _, e := range exts {
		em, ok := e.(map[string]any)
		if !ok || em["url"] != url {
			continue
		}
		for k, v := range em {
			if strings.HasPrefix(k, "value") {
				return v
			}
		}
		return em["extension"]
	}
	return nil
}
