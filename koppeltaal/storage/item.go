package storage

import (
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// Fields are what a client sends for an item: everything else (owner,
// domain, application, times, version) is the server's.
type Fields struct {
	Patient     string
	ObjectType  string
	ObjectKey   string
	ContentType string
	Content     []byte
}

// maxFieldLen bounds object type, key and content type (they are indexed).
const maxFieldLen = 256

// check validates the fields of a write; patient may come from elsewhere (the query, the token).
func (f Fields) check() error {
	if strings.TrimSpace(f.Patient) == "" {
		return fail(koppeltaal.Invalid, "required", "A StorageItem needs a patient: the %s extension (a Patient reference) or the patient parameter.", dstu1.ExtStoragePatientIdentifier)
	}
	if f.ContentType == "" {
		return fail(koppeltaal.Invalid, "required", "A StorageItem needs a content type (the %s extension).", dstu1.ExtStorageContentType)
	}
	if _, _, err := mime.ParseMediaType(f.ContentType); err != nil {
		return fail(koppeltaal.Invalid, "value", "The content type %q is not a MIME type such as application/json.", f.ContentType)
	}
	for _, v := range []struct{ name, v string }{{"patient", f.Patient}, {"objectType", f.ObjectType}, {"objectKey", f.ObjectKey}, {"contentType", f.ContentType}} {
		if len(v.v) > maxFieldLen {
			return fail(koppeltaal.Invalid, "value", "The %s is longer than %d characters.", v.name, maxFieldLen)
		}
	}
	return nil
}

// FieldsFromResource reads what a client may set from a StorageItem; the
// server-set elements (LastModified, ApplicationIdentifier, DomainName) are ignored.
func FieldsFromResource(r *dstu1.Resource) (Fields, error) {
	it, err := dstu1.ReadStorageItem(r)
	if err != nil {
		return Fields{}, fail(koppeltaal.Invalid, "structure", "The body must be an Other resource coded %s#%s: %v",
			dstu1.SystemOtherResourceUsage, dstu1.KindStorageItem, err)
	}
	patient, _ := dstu1.SplitHistory(it.Patient)
	return Fields{Patient: patient, ObjectType: it.ObjectType, ObjectKey: it.ObjectKey, ContentType: it.ContentType,
		Content: it.Content}, nil
}

// Resource renders a stored item with the server-set ApplicationIdentifier and DomainName.
func Resource(it store.StorageItem, application, domain string) *dstu1.Resource {
	return dstu1.StorageItem{Patient: it.PatientRef, ObjectType: it.ObjectType, ObjectKey: it.ObjectKey,
		ContentType: it.ContentType, Content: it.Content, LastModified: instant(it.UpdatedAt),
		ApplicationIdentifier: application, DomainName: domain}.Resource()
}

func instant(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }

// Ref is the resource path of an item: Other/StorageItem:<id>.
func Ref(id int64) string { return fmt.Sprintf("Other/%s:%d", dstu1.KindStorageItem, id) }
