package koppeltaal

import (
	"container/list"
	"strings"
	"sync"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
)

// msgCache keeps recently stored or rendered messages ready to render, so that
// claiming, reading and acknowledging a message does not read and re-parse its
// stored body each time (every message is rendered about twice per recipient:
// claim and acknowledgement). Stored messages and bodies never change after
// their transaction commits. It is filled only from committed data (after the
// POST's or the claim's commit, or from read transactions): a message read
// inside a group-commit batch could still be rolled back, and its id reused by
// another message.
//
// An id alone does not name a message for good: a database that lost its last
// transactions (a failover to an asynchronous standby, a restore) hands the
// same ids to other messages (issue 15: a cached message of one patient was
// served for another patient's queue entry). So an entry is only used for a
// queue row whose message fields (MessageHeader identifier, domain, event,
// focal resource, patient, created_at, all copied into the row when it is
// queued) match the cached message, and the whole cache starts over when the
// store's Epoch moves. The identifier is the sender's UUID: the one field a
// message under a reused id cannot share by chance (the same patient posted
// again in the same microsecond matches everything else).
//
// An entry holds the message in the form a recipient of one api-version gets
// before the per-recipient MessageHeader fields are set (1.3.3 recipients:
// non-focal versions stripped), split in two: the feed metadata and the
// MessageHeader entry as a parsed tree (the parts each recipient changes), and
// all other entries pre-encoded in both formats (dstu1.EncodedEntries), which
// are shared, never re-parsed, and cost the garbage collector nothing.
type msgCache struct {
	mu       sync.Mutex
	epoch    uint64     // store.Epoch the entries were read under
	ll       *list.List // front: most recently used; values *msgCacheEntry
	items    map[msgKey]*list.Element
	bytes    int // sum of the cached bodies' sizes, a proxy for memory
	maxBytes int
	maxItems int
	maxEntry int // the largest entry kept (see fits)
}

type msgKey struct {
	messageID int64
	stripped  bool
}

type msgCacheEntry struct {
	key    msgKey
	msg    store.Message
	bundle *dstu1.Bundle
	size   int
}

func newMsgCache(maxItems, maxBytes, maxEntry int) *msgCache {
	return &msgCache{ll: list.New(), items: map[msgKey]*list.Element{}, maxItems: maxItems, maxBytes: maxBytes, maxEntry: maxEntry}
}

// fits reports whether a message of bodySize bytes as stored or posted is
// small enough to cache, before the work of encoding it (its cached form
// takes about twice its size). A huge message is not worth what it holds: a
// 10 MiB one would keep ~22 MiB for as long as it is cached and push out
// thousands of ordinary ones (issue 16 item 3); its recipients parse it again.
func (c *msgCache) fits(bodySize int) bool {
	return c != nil && 2*bodySize+4096 <= c.maxEntry
}

// isMessageOf reports whether m is the message queue entry e was queued for.
// An entry queued before migration 0027 has an empty MessageIdentifier: for it
// the other copied fields decide, as they did before.
func isMessageOf(m store.Message, e store.Entry) bool {
	return m.ID == e.MessageID && m.DomainID == e.DomainID && m.CreatedAt == e.CreatedAt &&
		m.Event == e.Event && m.FocalRef == e.FocalRef && m.PatientRef == e.PatientRef &&
		(e.MessageIdentifier == "" || m.MessageIdentifier == e.MessageIdentifier)
}

// syncEpoch empties the cache when the store's epoch moved (c.mu held).
func (c *msgCache) syncEpoch(epoch uint64) {
	if epoch == c.epoch {
		return
	}
	c.ll.Init()
	clear(c.items)
	c.bytes, c.epoch = 0, epoch
}

// get returns the cached message of queue entry e and a private copy of its
// bundle (see msgCache); epoch is the store's current Epoch. A cached message
// that is not e's is dropped.
func (c *msgCache) get(k msgKey, e store.Entry, epoch uint64) (store.Message, *dstu1.Bundle, bool) {
	if c == nil {
		return store.Message{}, nil, false
	}
	c.mu.Lock()
	c.syncEpoch(epoch)
	el, ok := c.items[k]
	if !ok {
		c.mu.Unlock()
		return store.Message{}, nil, false
	}
	ce := el.Value.(*msgCacheEntry)
	if !isMessageOf(ce.msg, e) {
		c.removeElement(el) // another message under a reused id
		c.mu.Unlock()
		return store.Message{}, nil, false
	}
	c.ll.MoveToFront(el)
	c.mu.Unlock()
	return ce.msg, headCopy(ce.bundle), true
}

// put caches b (in cacheForm or headForm) for k, replacing another message cached under
// the same id; epoch is the store's Epoch before m was read or written.
func (c *msgCache) put(k msgKey, m store.Message, b *dstu1.Bundle, size int, epoch uint64) {
	if c == nil || size > c.maxEntry || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		if epoch < c.epoch {
			return // read before the epoch moved: it may come from the database before
		}
		c.syncEpoch(epoch)
	}
	if el, ok := c.items[k]; ok {
		if el.Value.(*msgCacheEntry).msg == m {
			c.ll.MoveToFront(el)
			return
		}
		c.removeElement(el)
	}
	c.items[k] = c.ll.PushFront(&msgCacheEntry{key: k, msg: m, bundle: b, size: size})
	c.bytes += size
	for c.ll.Len() > c.maxItems || c.bytes > c.maxBytes {
		c.removeElement(c.ll.Back())
	}
}

// drop forgets message id in both forms (its body was removed).
func (c *msgCache) drop(id int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, stripped := range []bool{false, true} {
		if el, ok := c.items[msgKey{messageID: id, stripped: stripped}]; ok {
			c.removeElement(el)
		}
	}
}

func (c *msgCache) removeElement(el *list.Element) {
	ce := el.Value.(*msgCacheEntry)
	c.ll.Remove(el)
	delete(c.items, ce.key)
	c.bytes -= ce.size
}

// cacheForm splits a stored message bundle (which the caller must not modify
// afterwards) into the cached form: metadata and a copy of the MessageHeader
// entry as a tree (headCopy), the other entries encoded. encodedSize is the
// length of the message as stored or posted (it sizes the buffers). It returns
// the size to account.
func cacheForm(b *dstu1.Bundle, encodedSize int) (*dstu1.Bundle, int) {
	c := headCopy(b)
	tail := dstu1.EncodeEntriesSized(b.Entries[1:], encodedSize)
	c.SetEncodedTail(tail)
	// The tree part is small; count it at a rough 4 KiB so that many tiny
	// messages cannot make the cache hold unbounded trees.
	return c, tail.Size() + 4096
}

// headCopy copies the parts of b a recipient changes (personalise): the bundle
// with its feed metadata and its first (MessageHeader) entry; an encoded tail
// is shared, other entries are left out. Both caches take a message in with it
// (cacheForm, headForm), and get hands each recipient one of the cached form,
// which has that entry only.
func headCopy(b *dstu1.Bundle) *dstu1.Bundle {
	head := *b
	head.Entries = b.Entries[:1]
	return head.Clone()
}

// headForm is what s.heads keeps of b, a bundle of its MessageHeader entry
// only: a deep copy (headCopy) whose strings are copies too. A parsed bundle's
// strings are slices of its whole body, so keeping them would keep the body (a
// load run's read-back grew the server by 200 MiB).
func headForm(b *dstu1.Bundle) *dstu1.Bundle {
	c := headCopy(b)
	c.ID, c.Title, c.Updated, c.Published = strings.Clone(c.ID), strings.Clone(c.Title), strings.Clone(c.Updated), strings.Clone(c.Published)
	c.TotalResults = strings.Clone(c.TotalResults)
	cloneAtomStrings(c.Authors, c.Links, c.Categories)
	for _, e := range c.Entries {
		e.Title, e.ID, e.Updated, e.Published = strings.Clone(e.Title), strings.Clone(e.ID), strings.Clone(e.Updated), strings.Clone(e.Published)
		e.Summary, e.Deleted = strings.Clone(e.Summary), strings.Clone(e.Deleted)
		cloneAtomStrings(e.Authors, e.Links, e.Categories)
		if e.Resource != nil {
			e.Resource.Walk(func(n *dstu1.Node) bool {
				n.Name, n.ID, n.URL, n.Value, n.XHTML = strings.Clone(n.Name), strings.Clone(n.ID), strings.Clone(n.URL), strings.Clone(n.Value), strings.Clone(n.XHTML)
				return true
			})
		}
	}
	return c
}

// cloneAtomStrings replaces the strings of a feed's or an entry's authors,
// links and categories (slices of its own) by copies.
func cloneAtomStrings(authors []dstu1.Person, links []dstu1.Link, categories []dstu1.Category) {
	for i, p := range authors {
		authors[i] = dstu1.Person{Name: strings.Clone(p.Name), URI: strings.Clone(p.URI)}
	}
	for i, l := range links {
		links[i] = dstu1.Link{Rel: strings.Clone(l.Rel), Href: strings.Clone(l.Href)}
	}
	for i, k := range categories {
		categories[i] = dstu1.Category{Term: strings.Clone(k.Term), Label: strings.Clone(k.Label), Scheme: strings.Clone(k.Scheme)}
	}
}
