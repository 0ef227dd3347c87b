package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// Item is a StorageItem as the server holds it: its URL (with version) and content.
type Item struct {
	dstu1.StorageItem
	// URL is the versioned URL (…/Other/StorageItem:<id>/_history/<version>); Update and Delete use it.
	URL string
}

// CreateItem stores a new StorageItem (SPEC.md §9) for it.Patient and returns it as stored.
func (c *Client) CreateItem(ctx context.Context, it dstu1.StorageItem) (Item, error) {
	return c.writeItem(ctx, http.MethodPost, c.URL("/Other?code=StorageItem"), it)
}

// UpdateItem replaces the item at url (the versioned URL from an earlier reply:
// the server refuses it with 409 when someone changed the item since).
func (c *Client) UpdateItem(ctx context.Context, url string, it dstu1.StorageItem) (Item, error) {
	return c.writeItem(ctx, http.MethodPut, url+"?code=StorageItem", it)
}

func (c *Client) writeItem(ctx context.Context, method, target string, it dstu1.StorageItem) (Item, error) {
	r := it.Resource()
	body := r.JSON()
	if c.format() == dstu1.FormatXML {
		body = r.XML()
	}
	b, h, err := c.do(ctx, method, target, body)
	if err != nil {
		return Item{}, err
	}
	return c.parseItem(b, h.Get("Content-Location"))
}

func (c *Client) parseItem(b []byte, loc string) (Item, error) {
	r, err := replyLimits.ParseResource(b, dstu1.Sniff(b))
	if err != nil {
		return Item{}, fmt.Errorf("koppeltaal: storage item reply: %w", err)
	}
	si, err := dstu1.ReadStorageItem(r)
	if err != nil {
		return Item{}, fmt.Errorf("koppeltaal: storage item reply: %w", err)
	}
	if loc == "" {
		return Item{}, errors.New("koppeltaal: storage item reply without Content-Location")
	}
	return Item{StorageItem: si, URL: loc}, nil
}

// Item reads one item by its URL (versioned or not) or its id ("StorageItem:<n>" or "<n>").
func (c *Client) Item(ctx context.Context, ref string) (Item, error) {
	b, h, err := c.do(ctx, http.MethodGet, c.itemURL(ref)+"?code=StorageItem", nil)
	if err != nil {
		return Item{}, err
	}
	return c.parseItem(b, h.Get("Content-Location"))
}

// DeleteItem deletes one item by its URL or id.
func (c *Client) DeleteItem(ctx context.Context, ref string) error {
	base, _ := dstu1.SplitHistory(c.itemURL(ref))
	_, _, err := c.do(ctx, http.MethodDelete, base, nil)
	return err
}

func (c *Client) itemURL(ref string) string {
	if len(ref) > 4 && ref[:4] == "http" {
		return ref
	}
	if len(ref) < 12 || ref[:12] != "StorageItem:" {
		ref = "StorageItem:" + ref
	}
	return c.URL("/Other/" + ref)
}

// SearchItems lists items of a patient; params adds the search arguments
// (objectType, objectKey[:startswith|:contains], lastModified, _sort:desc=lastModified, _count, page).
func (c *Client) SearchItems(ctx context.Context, patient string, params url.Values) ([]Item, error) {
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	q.Set("code", "StorageItem")
	if patient != "" {
		q.Set("patient", patient)
	}
	b, _, err := c.do(ctx, http.MethodGet, c.URL("/Other/_search?"+q.Encode()), nil)
	if err != nil {
		return nil, err
	}
	bundle, err := c.parseBundle(b, "storage search reply")
	if err != nil {
		return nil, err
	}
	items := make([]Item, 0, len(bundle.Entries))
	for _, e := range bundle.Entries {
		si, err := dstu1.ReadStorageItem(e.Resource)
		if err != nil {
			return nil, fmt.Errorf("koppeltaal: storage search reply entry %s: %w", e.ID, err)
		}
		items = append(items, Item{StorageItem: si, URL: e.SelfLink()})
	}
	return items, nil
}
