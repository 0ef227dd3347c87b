package adapters

import (
	"encoding/json"
	"testing"
)

// Whole JSON numbers stay whole through decoding and through a record's own JSON (the durable transport).
func TestDecodeObjectKeepsWholeNumbers(t *testing.T) {
	m, err := DecodeObject([]byte(`{"clientnr": 12345678901234567, "score": 7.5, "list": [1, 2.5], "obj": {"n": 3}, "huge": 1e400}`))
	if err != nil {
		t.Fatal(err)
	}
	if m["clientnr"] != 12345678901234567 || m["score"] != 7.5 || m["list"].([]any)[0] != 1 || m["obj"].(map[string]any)["n"] != 3 || m["huge"] != "1e400" {
		t.Fatalf("%#v", m)
	}
	b, _ := json.Marshal(Record{Key: "k", Fields: m, Meta: map[string]string{"a": "b"}})
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Key != "k" || back.Meta["a"] != "b" || back.Fields["clientnr"] != 12345678901234567 || back.Fields["score"] != 7.5 {
		t.Fatalf("after a JSON round trip: %#v", back)
	}
	if _, err := DecodeObject([]byte(`{"a": 1} {"b": 2}`)); err == nil {
		t.Error("two objects: want an error")
	}
}
