package adapters

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// DecodeObject decodes a JSON object the way records hold JSON: a whole number becomes an int (so a client
// number 12345678901234567 keeps every digit and `str(record.n)` is "12345678901234567"), any other number
// a float64. encoding/json alone gives float64 for both and loses digits past 2^53.
func DecodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("JSON: more than one value")
	}
	return normalizeNumbers(m).(map[string]any), nil
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return int(i)
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return string(x) // beyond float64: keep the digits
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
		return x
	}
	return v
}

// UnmarshalJSON reads a record as DecodeObject does, so a record keeps its whole numbers through the
// durable transport, dead letters and replays.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain struct {
		Key    string            `json:"key"`
		Fields json.RawMessage   `json:"fields"`
		Meta   map[string]string `json:"meta,omitempty"`
	}
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	r.Key, r.Meta, r.Fields = p.Key, p.Meta, nil
	if len(p.Fields) > 0 && string(p.Fields) != "null" {
		f, err := DecodeObject(p.Fields)
		if err != nil {
			return fmt.Errorf("record fields: %w", err)
		}
		r.Fields = f
	}
	return nil
}
