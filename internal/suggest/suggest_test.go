package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"addr", "public_url", "store", "subscriptions"}
	for got, want := range map[string]string{
		"stroe":        "store",
		"adr":          "addr",
		"Store":        "store",
		"subscription": "subscriptions",
		"publc_ur":     "public_url",
		"xyz":          "",
		"completely":   "",
	} {
		if c := Closest(got, known); c != want {
			t.Errorf("Closest(%q) = %q, want %q", got, c, want)
		}
	}
	if d := distance("kitten", "sitting"); d != 3 {
		t.Errorf("distance(kitten, sitting) = %d, want 3", d)
	}
}
