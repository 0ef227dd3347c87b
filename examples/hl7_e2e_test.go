package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
)

// mllpSend is a small MLLP sender, as an EPD's interface engine is: one framed message, then the ACK's
// MSA-1 and MSA-3.
func mllpSend(t *testing.T, addr, msg string) (code, text string) {
	t.Helper()
	var c net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err = net.Dial("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("connect to the MLLP listener: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("\x0b" + msg + "\x1c\r")); err != nil {
		t.Fatal(err)
	}
	raw, err := bufio.NewReader(c).ReadBytes(0x1c)
	if err != nil {
		t.Fatalf("no ACK: %v", err)
	}
	for _, seg := range bytes.Split(bytes.Trim(raw, "\x0b\x1c\r"), []byte("\r")) {
		if f := strings.Split(string(seg), "|"); f[0] == "MSA" && len(f) > 1 {
			code = f[1]
			if len(f) > 3 {
				text = f[3]
			}
		}
	}
	return code, text
}

// TestHL7ToKoppeltaal runs the HL7 example end to end: an ADT^A04 over MLLP gets AA once it is stored and
// the demo game then claims the CreateOrUpdatePatient; an ADT the route cannot use gets AE with the reason
// and leaves nothing behind (no message, no dead letter); a message sent again after a lost ACK is not
// delivered twice.
func TestHL7ToKoppeltaal(t *testing.T) {
	addr := testkit.FreeAddr(t)
	t.Setenv("HL7_LISTEN", addr)
	_, n, game := runExample(t, "hl7-to-koppeltaal")

	a04 := "MSH|^~\\&|EPD|GGZ|KOPPELPOORT|GGZ|20261202101500||ADT^A04^ADT_A01|MSG00001|P|2.5|||AL|NE||8859/1\r" +
		"EVN|A04|20261202101500\r" +
		"PID|1||111222333^^^NLMINBIZA^NNNLD~1001^^^EPD^PI||van der Berg&van der&Berg^Jan^^^^^L||19800203|M\r"
	if code, text := mllpSend(t, addr, a04); code != "AA" {
		t.Fatalf("valid A04: %s %q", code, text)
	}
	msgs := claimAll(t, game, 1)
	mh := msgs[0].MessageHeader()
	if mh.EventCode() != "CreateOrUpdatePatient" || !strings.HasSuffix(mh.Patient(), "/Patient/epd-1001") {
		t.Fatalf("claimed %s about %s", mh.EventCode(), mh.Patient())
	}
	if name := msgs[0].Entries[1].Resource.Node.Str("name", "text"); name != "Jan van der Berg" {
		t.Errorf("patient name %q", name)
	}

	// The route would dead-letter these: AE with the route's reason, nothing stored.
	badBSN := strings.NewReplacer("111222333", "123456789", "MSG00001", "MSG00002").Replace(a04)
	if code, text := mllpSend(t, addr, badBSN); code != "AE" || text != "invalid BSN in ADT MSG00002 (fails the eleven-proof)" {
		t.Fatalf("invalid BSN: %s %q", code, text)
	}
	noPID := "MSH|^~\\&|EPD|GGZ|KOPPELPOORT|GGZ|20261202||ADT^A04|MSG00003|P|2.5\rEVN|A04\r"
	if code, _ := mllpSend(t, addr, noPID); code != "AE" {
		t.Fatalf("no PID: %s", code)
	}
	if code, _ := mllpSend(t, addr, "this is not HL7"); code != "AR" {
		t.Fatalf("not HL7: %s", code)
	}
	// The ACK of MSG00001 was lost: the EPD sends it again. Accepted, not delivered twice.
	if code, _ := mllpSend(t, addr, a04); code != "AA" {
		t.Fatalf("resent A04: %s", code)
	}
	a08 := strings.NewReplacer("ADT^A04^ADT_A01", "ADT^A08^ADT_A01", "MSG00001", "MSG00004", "^Jan^", "^Johannes^").Replace(a04)
	if code, _ := mllpSend(t, addr, a08); code != "AA" {
		t.Fatalf("A08: %s", code)
	}
	next := claimAll(t, game, 1)
	if name := next[0].Entries[1].Resource.Node.Str("name", "text"); name != "Johannes van der Berg" {
		t.Fatalf("the next message is not the A08 update (the refused or resent messages left something): %q", name)
	}
	if m, err := game.Claim(context.Background(), client.ClaimFilter{}); err != nil || m != nil {
		t.Fatalf("a further message waits: %v %v", m, err)
	}
	if dl, _ := runtime.ListDeadLetters(context.Background(), n.store, runtime.Filter{}); len(dl) != 0 {
		t.Fatalf("refused messages left dead letters: %+v", dl)
	}
}
