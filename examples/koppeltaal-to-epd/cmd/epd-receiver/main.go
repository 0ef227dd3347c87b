// Command epd-receiver runs the example EPD REST API on 127.0.0.1:8092 (or $EPD_LISTEN), expecting the
// bearer token $EPD_TOKEN (default epd-demo-token). See examples/koppeltaal-to-epd/README.md.
package main

import (
	"log"
	"net/http"
	"os"

	"github.com/koppelpoort/koppelpoort/examples/koppeltaal-to-epd/epdreceiver"
)

func main() {
	addr := os.Getenv("EPD_LISTEN")
	if addr == "" {
		addr = "127.0.0.1:8092"
	}
	token := os.Getenv("EPD_TOKEN")
	if token == "" {
		token = "epd-demo-token"
	}
	log.Printf("demo EPD receiver on http://%s/api/activities", addr)
	log.Fatal(http.ListenAndServe(addr, epdreceiver.New(token)))
}
