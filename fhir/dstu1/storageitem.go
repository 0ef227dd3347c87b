package dstu1

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Extension URLs of the Koppeltaal StorageItem profile (an Other coded
// StorageItem; ARCH §11.2.15). The …/Profile/StorageItem# form is read too.
const (
	ExtStorageContentType           = KoppeltaalBase + "StorageItem#ContentType"
	ExtStorageContent               = KoppeltaalBase + "StorageItem#Content"
	ExtStoragePatientIdentifier     = KoppeltaalBase + "StorageItem#PatientIdentifier"
	ExtStorageObjectType            = KoppeltaalBase + "StorageItem#ObjectType"
	ExtStorageObjectKey             = KoppeltaalBase + "StorageItem#ObjectKey"
	ExtStorageLastModified          = KoppeltaalBase + "StorageItem#LastModified"
	ExtStorageApplicationIdentifier = KoppeltaalBase + "StorageItem#ApplicationIdentifier"
	ExtStorageDomainName            = KoppeltaalBase + "StorageItem#DomainName"
)

// StorageItem is the content of a Koppeltaal StorageItem resource.
type StorageItem struct {
	Patient     string // the patient's URL (PatientIdentifier, a Patient reference)
	ObjectType  string
	ObjectKey   string // unique per patient and object type
	ContentType string // MIME type of Content
	Content     []byte
	// Set by the server: ignored when a client sends them.
	LastModified          string
	ApplicationIdentifier string
	DomainName            string
}

// ErrNotStorageItem is returned by ReadStorageItem for any other resource.
var ErrNotStorageItem = errors.New("not an Other resource coded StorageItem")

// ReadStorageItem reads a StorageItem resource. The patient may be a
// valueResource reference (the profile), a valueString or a valueIdentifier.
func ReadStorageItem(r *Resource) (StorageItem, error) {
	var it StorageItem
	if r == nil || r.Type() != "Other" || r.KoppeltaalType() != KindStorageItem {
		return it, ErrNotStorageItem
	}
	str := func(canonical string) string {
		return strings.TrimSpace(r.Extension(ExtensionURLs(canonical)...).ExtensionValue().Str())
	}
	it.ContentType = str(ExtStorageContentType)
	it.ObjectType = str(ExtStorageObjectType)
	it.ObjectKey = str(ExtStorageObjectKey)
	it.LastModified = str(ExtStorageLastModified)
	it.ApplicationIdentifier = str(ExtStorageApplicationIdentifier)
	it.DomainName = str(ExtStorageDomainName)
	if p := r.Extension(ExtensionURLs(ExtStoragePatientIdentifier)...).ExtensionValue(); p != nil {
		it.Patient = p.Str("reference")
		if it.Patient == "" {
			it.Patient = p.Value
		}
		if it.Patient == "" {
			it.Patient = p.Str("value")
		}
		it.Patient = strings.TrimSpace(it.Patient)
	}
	if c := str(ExtStorageContent); c != "" {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c), ""))
		if err != nil {
			return it, fmt.Errorf("the %s extension is not base64: %w", ExtStorageContent, err)
		}
		it.Content = b
	}
	return it, nil
}

// Resource renders the item as an Other coded StorageItem.
func (it StorageItem) Resource() *Resource {
	r := NewResource("Other")
	str := func(canonical, v string) {
		if v != "" {
			r.Add(NewExtension(canonical, NewPrimitive("valueString", v)))
		}
	}
	str(ExtStorageContentType, it.ContentType)
	r.Add(NewExtension(ExtStorageContent, NewPrimitive("valueBase64Binary", base64.StdEncoding.EncodeToString(it.Content))))
	if it.Patient != "" {
		r.Add(NewExtension(ExtStoragePatientIdentifier, NewReference("valueResource", it.Patient)))
	}
	str(ExtStorageObjectType, it.ObjectType)
	str(ExtStorageObjectKey, it.ObjectKey)
	if it.LastModified != "" {
		r.Add(NewExtension(ExtStorageLastModified, NewPrimitive("valueInstant", it.LastModified)))
	}
	str(ExtStorageApplicationIdentifier, it.ApplicationIdentifier)
	str(ExtStorageDomainName, it.DomainName)
	r.Add(NewElement("code", NewCoding("coding", SystemOtherResourceUsage, KindStorageItem, KindStorageItem)))
	return r
}
