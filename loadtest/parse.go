package loadtest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// headerInfo is what the load tool needs from a MessageHeader a server returned.
type headerInfo struct {
	entryID    string   // server entry id, e.g. [base]/MessageHeader/39
	selfLink   string   // versioned self link: where the acknowledgement is PUT
	identifier string   // MessageHeader.identifier
	event      string   // event.code
	data       []string // data references (versioned)
	respID     string   // response.identifier (Mailbox replies)
	respCode   string   // response.code (Mailbox replies)
	status     string   // ProcessingStatus#ProcessingStatusStatus
	raw        []byte   // the MessageHeader resource as received (JSON object or XML element)
}

// bundleInfo is a parsed search/claim/mailbox reply.
type bundleInfo struct {
	headers []headerInfo // MessageHeader entries, in order
	entries int          // all entries
	next    string       // "next" link, "" when last page
}

var errNotBundle = errors.New("reply is not a FHIR bundle")

// parseBundle reads a DSTU1 JSON Bundle or Atom feed, decoding only the
// MessageHeader entries (CarePlans and the like are skipped unparsed).
func parseBundle(body []byte) (bundleInfo, error) {
	t := bytes.TrimLeft(body, " \t\r\n\ufeff")
	if len(t) == 0 {
		return bundleInfo{}, errNotBundle
	}
	if t[0] == '{' {
		return parseJSONBundle(t)
	}
	if t[0] == '<' {
		return parseXMLBundle(t)
	}
	return bundleInfo{}, errNotBundle
}

type jsonLink struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

type jsonExt struct {
	URL       string    `json:"url"`
	ValueCode string    `json:"valueCode"`
	Extension []jsonExt `json:"extension"`
}

type jsonHeader struct {
	ResourceType string `json:"resourceType"`
	Identifier   string `json:"identifier"`
	Event        struct {
		Code string `json:"code"`
	} `json:"event"`
	Data []struct {
		Reference string `json:"reference"`
	} `json:"data"`
	Response *struct {
		Identifier string `json:"identifier"`
		Code       string `json:"code"`
	} `json:"response"`
	Extension []jsonExt `json:"extension"`
}

func parseJSONBundle(body []byte) (bundleInfo, error) {
	var b struct {
		ResourceType string     `json:"resourceType"`
		Link         []jsonLink `json:"link"`
		Entry        []struct {
			ID      string          `json:"id"`
			Link    []jsonLink      `json:"link"`
			Content json.RawMessage `json:"content"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return bundleInfo{}, fmt.Errorf("decode JSON bundle: %w", err)
	}
	if b.ResourceType != "Bundle" {
		return bundleInfo{}, fmt.Errorf("%w (resourceType %q)", errNotBundle, b.ResourceType)
	}
	out := bundleInfo{entries: len(b.Entry)}
	for _, l := range b.Link {
		if l.Rel == "next" {
			out.next = l.Href
		}
	}
	for _, e := range b.Entry {
		// Cheap check before decoding: only MessageHeaders matter here.
		if !bytes.Contains(e.Content[:min(len(e.Content), 4096)], []byte(`"MessageHeader"`)) && !bytes.Contains(e.Content, []byte(`"resourceType":"MessageHeader"`)) {
			continue
		}
		var h jsonHeader
		if err := json.Unmarshal(e.Content, &h); err != nil {
			return bundleInfo{}, fmt.Errorf("decode MessageHeader entry %s: %w", e.ID, err)
		}
		if h.ResourceType != "MessageHeader" {
			continue
		}
		hi := headerInfo{entryID: e.ID, identifier: h.Identifier, event: h.Event.Code, raw: e.Content}
		for _, l := range e.Link {
			if l.Rel == "self" {
				hi.selfLink = l.Href
			}
		}
		for _, d := range h.Data {
			hi.data = append(hi.data, d.Reference)
		}
		if h.Response != nil {
			hi.respID, hi.respCode = h.Response.Identifier, h.Response.Code
		}
		for _, x := range h.Extension {
			if strings.HasSuffix(x.URL, "MessageHeader#ProcessingStatus") {
				for _, y := range x.Extension {
					if strings.HasSuffix(y.URL, "#ProcessingStatusStatus") {
						hi.status = y.ValueCode
					}
				}
			}
		}
		out.headers = append(out.headers, hi)
	}
	return out, nil
}

type xmlVal struct {
	Value string `xml:"value,attr"`
}

type xmlLink struct {
	Rel  string `xml:"rel,attr"`
	Href string `xml:"href,attr"`
}

type xmlExt struct {
	URL       string   `xml:"url,attr"`
	ValueCode xmlVal   `xml:"valueCode"`
	Extension []xmlExt `xml:"extension"`
}

type xmlHeader struct {
	XMLName    xml.Name
	Identifier xmlVal `xml:"identifier"`
	Event      struct {
		Code xmlVal `xml:"code"`
	} `xml:"event"`
	Data []struct {
		Reference xmlVal `xml:"reference"`
	} `xml:"data"`
	Response *struct {
		Identifier xmlVal `xml:"identifier"`
		Code       xmlVal `xml:"code"`
	} `xml:"response"`
	Extension []xmlExt `xml:"extension"`
}

func parseXMLBundle(body []byte) (bundleInfo, error) {
	var f struct {
		XMLName xml.Name
		Link    []xmlLink `xml:"link"`
		Entry   []struct {
			ID      string    `xml:"id"`
			Link    []xmlLink `xml:"link"`
			Content struct {
				Inner []byte `xml:",innerxml"`
			} `xml:"content"`
		} `xml:"entry"`
	}
	if err := xml.Unmarshal(body, &f); err != nil {
		return bundleInfo{}, fmt.Errorf("decode Atom feed: %w", err)
	}
	if f.XMLName.Local != "feed" {
		return bundleInfo{}, fmt.Errorf("%w (root element <%s>)", errNotBundle, f.XMLName.Local)
	}
	out := bundleInfo{entries: len(f.Entry)}
	for _, l := range f.Link {
		if l.Rel == "next" {
			out.next = l.Href
		}
	}
	for _, e := range f.Entry {
		inner := bytes.TrimSpace(e.Content.Inner)
		if !bytes.HasPrefix(inner, []byte("<MessageHeader")) {
			continue
		}
		var h xmlHeader
		if err := xml.Unmarshal(inner, &h); err != nil {
			return bundleInfo{}, fmt.Errorf("decode MessageHeader entry %s: %w", e.ID, err)
		}
		hi := headerInfo{entryID: strings.TrimSpace(e.ID), identifier: h.Identifier.Value, event: h.Event.Code.Value, raw: inner}
		for _, l := range e.Link {
			if l.Rel == "self" {
				hi.selfLink = l.Href
			}
		}
		for _, d := range h.Data {
			hi.data = append(hi.data, d.Reference.Value)
		}
		if h.Response != nil {
			hi.respID, hi.respCode = h.Response.Identifier.Value, h.Response.Code.Value
		}
		for _, x := range h.Extension {
			if strings.HasSuffix(x.URL, "MessageHeader#ProcessingStatus") {
				for _, y := range x.Extension {
					if strings.HasSuffix(y.URL, "#ProcessingStatusStatus") {
						hi.status = y.ValueCode.Value
					}
				}
			}
		}
		out.headers = append(out.headers, hi)
	}
	return out, nil
}

// splitVersion splits ".../Patient/7/_history/v1" into the URL and "v1".
func splitVersion(ref string) (url, version string) {
	if i := strings.LastIndex(ref, "/_history/"); i >= 0 {
		return ref[:i], ref[i+len("/_history/"):]
	}
	return ref, ""
}

// ackBody returns the MessageHeader as received with its ProcessingStatus
// extension replaced by status (and exception text for Failed), in the format
// it was received in.
func ackBody(raw []byte, status, exception, now string) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '{' {
		return ackJSON(t, status, exception, now)
	}
	return ackXML(t, status, exception, now)
}

func statusExtJSON(status, exception, now string) map[string]any {
	inner := []any{
		map[string]any{"url": ktBase + "MessageHeader#ProcessingStatusStatus", "valueCode": status},
		map[string]any{"url": ktBase + "MessageHeader#ProcessingStatusStatusLastChanged", "valueInstant": now},
	}
	if exception != "" {
		inner = append(inner, map[string]any{"url": ktBase + "MessageHeader#ProcessingStatusException", "valueString": exception})
	}
	return map[string]any{"url": ktBase + "MessageHeader#ProcessingStatus", "extension": inner}
}

func ackJSON(raw []byte, status, exception, now string) ([]byte, error) {
	var mh map[string]any
	if err := json.Unmarshal(raw, &mh); err != nil {
		return nil, fmt.Errorf("decode claimed MessageHeader: %w", err)
	}
	exts, _ := mh["extension"].([]any)
	kept := exts[:0:0]
	for _, x := range exts {
		if m, ok := x.(map[string]any); ok {
			if u, _ := m["url"].(string); strings.HasSuffix(u, "MessageHeader#ProcessingStatus") {
				continue
			}
		}
		kept = append(kept, x)
	}
	mh["extension"] = append(kept, statusExtJSON(status, exception, now))
	return json.Marshal(mh)
}

// xnode is a generic XML element, enough to copy a MessageHeader faithfully.
type xnode struct {
	name  string
	attrs []xml.Attr
	kids  []*xnode
	text  string
}

func parseXNode(raw []byte) (*xnode, error) {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	var stack []*xnode
	var root *xnode
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) && root != nil {
				return root, nil
			}
			if root != nil && len(stack) == 0 {
				return root, nil
			}
			return nil, fmt.Errorf("decode claimed MessageHeader: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) > maxDepth {
				return nil, errors.New("decode claimed MessageHeader: nested too deeply")
			}
			n := &xnode{name: t.Name.Local}
			for _, a := range t.Attr {
				if a.Name.Space == "" && a.Name.Local != "xmlns" {
					n.attrs = append(n.attrs, xml.Attr{Name: xml.Name{Local: a.Name.Local}, Value: a.Value})
				}
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		}
	}
}

func (n *xnode) attr(k string) string {
	for _, a := range n.attrs {
		if a.Name.Local == k {
			return a.Value
		}
	}
	return ""
}

func (n *xnode) write(b *bytes.Buffer, root bool) {
	b.WriteString("<" + n.name)
	if root {
		b.WriteString(` xmlns="` + fhirNS + `"`)
	}
	for _, a := range n.attrs {
		b.WriteString(" " + a.Name.Local + `="`)
		xmlEscape(b, a.Value)
		b.WriteByte('"')
	}
	if len(n.kids) == 0 && strings.TrimSpace(n.text) == "" {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	if len(n.kids) == 0 {
		xmlEscape(b, n.text)
	}
	for _, k := range n.kids {
		k.write(b, false)
	}
	b.WriteString("</" + n.name + ">")
}

func ackXML(raw []byte, status, exception, now string) ([]byte, error) {
	root, err := parseXNode(raw)
	if err != nil {
		return nil, err
	}
	if root.name != "MessageHeader" {
		return nil, fmt.Errorf("claimed entry is <%s>, not a MessageHeader", root.name)
	}
	st := &el{name: "extension", attrs: []kv{{"url", ktBase + "MessageHeader#ProcessingStatus"}}, kids: []*el{
		extVal("MessageHeader#ProcessingStatusStatus", "valueCode", status),
		extVal("MessageHeader#ProcessingStatusStatusLastChanged", "valueInstant", now),
	}}
	if exception != "" {
		st.kids = append(st.kids, extVal("MessageHeader#ProcessingStatusException", "valueString", exception))
	}
	var b bytes.Buffer
	b.WriteString(`<MessageHeader xmlns="` + fhirNS + `"`)
	for _, a := range root.attrs {
		b.WriteString(" " + a.Name.Local + `="`)
		xmlEscape(&b, a.Value)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	// Extensions come first in FHIR XML: keep the others, put the new status last among them.
	placed := false
	for _, k := range root.kids {
		if k.name == "extension" && strings.HasSuffix(k.attr("url"), "MessageHeader#ProcessingStatus") {
			continue
		}
		if !placed && k.name != "extension" {
			st.writeXML(&b, false)
			placed = true
		}
		k.write(&b, false)
	}
	if !placed {
		st.writeXML(&b, false)
	}
	b.WriteString("</MessageHeader>")
	return b.Bytes(), nil
}
