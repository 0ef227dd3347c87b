package dstu1_test

import (
	"fmt"
	"log"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

func Example() {
	body := []byte(`<feed xmlns="http://www.w3.org/2005/Atom">
  <id>urn:uuid:6f1c0e52-5a2f-4a57-9b7e-2f3c1d7e8a11</id>
  <category term="http://ggz.koppeltaal.nl/fhir/Koppeltaal/Domain#Demo Domain" label="Demo Domain" scheme="http://hl7.org/fhir/tag/security"/>
  <category term="http://hl7.org/fhir/tag/message" scheme="http://hl7.org/fhir/tag"/>
  <entry>
    <content type="text/xml">
      <MessageHeader xmlns="http://hl7.org/fhir">
        <identifier value="9a3c"/>
        <timestamp value="2026-11-28T12:00:00+01:00"/>
        <event><system value="http://ggz.koppeltaal.nl/fhir/Koppeltaal/MessageEvents"/><code value="CreateOrUpdatePatient"/></event>
        <source><software value="demo"/><endpoint value="https://app.example/fhir"/></source>
        <data><reference value="https://app.example/fhir/Patient/1"/></data>
      </MessageHeader>
    </content>
  </entry>
  <entry>
    <link rel="self" href="https://app.example/fhir/Patient/1/_history/2026-11-28T11:00:00:000.0001"/>
    <content type="text/xml"><Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient></content>
  </entry>
</feed>`)
	b, err := dstu1.ParseBundle(body, dstu1.Sniff(body))
	if err != nil {
		log.Fatal(err)
	}
	domain, _ := b.Domain()
	mh := b.MessageHeader()
	fmt.Println(domain, mh.EventCode(), mh.Data())
	base, version := dstu1.SplitHistory(b.Entries[1].SelfLink())
	fmt.Println(b.Entries[1].ResourceType(), base, version)

	// The server claims the message: set the processing status and write JSON for a JSON client.
	mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: "Claimed", LastChanged: "2026-11-28T12:00:05+01:00"})
	mh.SetIsExpired(false)
	out := b.JSON()
	again, err := dstu1.ParseBundle(out, dstu1.FormatJSON)
	if err != nil {
		log.Fatal(err)
	}
	ps, _ := again.MessageHeader().ProcessingStatus()
	same, _ := dstu1.Equal(b, again)
	fmt.Println(ps.Status, same)
	// Output:
	// Demo Domain CreateOrUpdatePatient [https://app.example/fhir/Patient/1]
	// Patient https://app.example/fhir/Patient/1 2026-11-28T11:00:00:000.0001
	// Claimed true
}

func ExampleNewOperationOutcome() {
	oo := dstu1.NewOperationOutcome("", dstu1.Issue{
		Severity: "error",
		Type:     "conflict",
		Details:  "The specified resource version is not correct",
		Resource: "https://app.example/fhir/Patient/1",
	})
	fmt.Print(string(oo.XML()))
	fmt.Println(string(oo.JSON()))
	// Output:
	// <OperationOutcome xmlns="http://hl7.org/fhir">
	//   <text>
	//     <status value="generated"/>
	//     <div xmlns="http://www.w3.org/1999/xhtml"><p>The specified resource version is not correct</p></div>
	//   </text>
	//   <issue>
	//     <extension url="http://ggz.koppeltaal.nl/fhir/Koppeltaal/OperationOutcome#IssueResource">
	//       <valueResource>
	//         <reference value="https://app.example/fhir/Patient/1"/>
	//       </valueResource>
	//     </extension>
	//     <severity value="error"/>
	//     <type>
	//       <system value="http://hl7.org/fhir/issue-type"/>
	//       <code value="conflict"/>
	//     </type>
	//     <details value="The specified resource version is not correct"/>
	//   </issue>
	// </OperationOutcome>
	// {"resourceType":"OperationOutcome","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>The specified resource version is not correct</p></div>"},"issue":[{"extension":[{"url":"http://ggz.koppeltaal.nl/fhir/Koppeltaal/OperationOutcome#IssueResource","valueResource":{"reference":"https://app.example/fhir/Patient/1"}}],"severity":"error","type":{"system":"http://hl7.org/fhir/issue-type","code":"conflict"},"details":"The specified resource version is not correct"}]}
}
