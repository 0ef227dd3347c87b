package adapters_test

import (
	"testing"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/adapters/file"
)

func TestDuplicateRegistrationPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("registering inbound.file twice must panic")
		}
	}()
	adapters.Register(adapters.Registration{ID: "inbound.file", Spec: file.InboundSpec, New: func() any { return new(file.Inbound) }})
}

func TestListIsSortedByNamespace(t *testing.T) {
	in := adapters.List("inbound")
	if len(in) == 0 || in[0].ID != "inbound.file" {
		t.Fatalf("inbound list: %v", in)
	}
	for i := 1; i < len(in); i++ {
		if in[i-1].ID >= in[i].ID {
			t.Fatalf("not sorted: %s before %s", in[i-1].ID, in[i].ID)
		}
	}
	for _, r := range adapters.List("outbound") {
		if r.Name() == "" || r.ID[:9] != "outbound." {
			t.Fatalf("bad registration %q", r.ID)
		}
	}
}
