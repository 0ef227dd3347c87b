// Package dstu1 reads and writes FHIR DSTU1 (0.0.82) messages as Koppeltaal 1.3.x exchanges them: Atom feed
// XML (resources in the http://hl7.org/fhir namespace) and DSTU1 JSON bundles, into one in-memory model.
//
// # Model
//
// A Bundle holds the feed metadata (id, title, updated, author, link, category, totalResults) and its
// Entries; each Entry holds a Resource. A Resource is a tree of Nodes in document order: element name, id
// attribute, extension url, primitive value, XHTML narrative, children. Extensions (nested too),
// modifierExtensions and elements the schema does not know are kept. Reading XML keeps element order;
// reading JSON puts elements in schema order, because XML needs it and JSON has none.
//
// Which elements repeat (JSON arrays), which are primitives (JSON string, number or boolean) and the
// schema order come from the DSTU1 XSDs in schema/, compiled by internal/gen into schema_gen.go
// (go generate). Unknown elements survive XML→XML and JSON→JSON unchanged; XML→JSON writes an unknown
// element as an array when it occurs more than once and as a single value otherwise.
//
// # What is kept and what is not
//
// Kept in both forms: element order (XML; JSON input is put in schema order), ids, extension urls, values,
// narratives, unknown elements, contained resources, feed and entry metadata (deleted entries too). Not
// kept: XML comments and processing instructions, attributes other than id/value/url on FHIR elements
// (xml:lang, xsi:*), feed-level elements outside Atom/opensearch/tombstones, unknown members of the JSON
// Bundle and entry objects, and insignificant whitespace (Atom text is trimmed in both forms). Binary
// resources are refused. Text inside a FHIR element (for example documentation examples elided with
// "...") is refused, as are shapes only one form could carry (a url attribute on a non-extension, a
// primitive without value, id or extensions, an unknown element with both a value and child elements).
//
// # Wire details
//
// JSON: "resourceType" first in every resource, element ids as "id" as the Koppeltaal Python connector
// writes them (input accepts "id" and "_id"; JSONOptions.ElementIDKey chooses the output),
// primitive ids/extensions in "_name" members, totalResults as a string. XML: no XML declaration; a bundle
// starts with <feed xmlns="http://www.w3.org/2005/Atom">, a single resource with
// <Type xmlns="http://hl7.org/fhir">. A single resource whose root is in the Atom namespace (SoapUI
// examples) is accepted.
//
// # Safety and speed
//
// XML is read by a small strict tokenizer (xml_scan.go) instead of encoding/xml, differentially fuzzed
// against it (FuzzXMLScanner); JSON by a hand-written scanner. Nodes, child lists and JSON members come
// from chunked arenas: parsing the 12 KB CarePlan bundle makes 55 allocations from XML (2047 with
// encoding/xml) and 47 from JSON; writing makes none. Numbers: go test -bench . ./fhir/dstu1 (the
// cpu-ns/op column is the CPU time per operation, meaningful on a busy machine). All parse functions are
// safe for concurrent use; a Bundle or Resource is not (Clone it to share).
//
// Parsers take a Limits (size, depth, element count; zero fields are defaults of 10 MiB, 64 and 200 000),
// reject DTDs, invalid UTF-8, and null inside JSON arrays (ErrNullInArray, the Koppeltaal text). Every
// rejection is a *SyntaxError with a line/column and an element or JSON path; sentinels (ErrTooLarge,
// ErrTooDeep, ErrTooManyElements, ErrInvalidUTF8, ErrDTD, ErrNullInArray, ErrNotFHIR) work with errors.Is.
//
// # What a value must be
//
// JSON values must have the JSON type DSTU1 gives them (strings, numbers for integer and decimal, true/false;
// arrays for repeating elements; no null members; strings for Atom fields). Every primitive's value is
// checked against its DSTU1 type from the schemas (dates and times in range, 32-bit integers, decimals of at
// most 28 digits, URIs, codes, ids, base64, ...; values.go says where deployed Koppeltaal clients are allowed
// more than the schema). Limits.SkipValueChecks turns the value checks off for bodies that were checked when
// they came in. Resource.MissingRequired lists the elements the schema requires that a resource lacks.
//
// # Koppeltaal access
//
// Bundle.Domain, Bundle.IsMessage, Bundle.MessageHeader, Entry.SelfLink, Entry.ResourceType (the
// OtherResourceUsage code for Other resources), SplitHistory; MessageHeader exposes identifier, event,
// source, data, response, Patient, ProcessingStatus and IsExpired (both Koppeltaal extension URL forms are
// read; the non-Profile form is written), with setters the server needs. Equal compares two bundles
// canonically and names the first difference.
package dstu1
