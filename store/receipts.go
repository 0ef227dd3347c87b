package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
)

// Receipt records an accepted POST: who sent which message (by its
// MessageHeader.identifier and a hash of the exact request body) and the data
// references the reply listed.
type Receipt struct {
	SenderInstanceID  int64
	MessageIdentifier string
	RequestHash       string
	MessageID         int64
	Data              []string
	CreatedAt         int64
}

const receiptSQL = `SELECT message_id, response_data, created_at FROM post_receipts
	WHERE sender_instance_id = ? AND message_identifier = ? AND request_hash = ?`

var receiptSQLPG = sqlx.Rebind(sqlx.DOLLAR, receiptSQL)

type receiptRow struct {
	MessageID int64  `db:"message_id"`
	Data      string `db:"response_data"`
	CreatedAt int64  `db:"created_at"`
}

func (row receiptRow) receipt(senderInstanceID int64, identifier, requestHash string) Receipt {
	return Receipt{SenderInstanceID: senderInstanceID, MessageIdentifier: identifier, RequestHash: requestHash,
		MessageID: row.MessageID, Data: strings.Split(row.Data, "\n"), CreatedAt: row.CreatedAt}
}

// Receipt returns the receipt of an earlier identical POST; ok is false when there is none.
func (t *Tx) Receipt(ctx context.Context, senderInstanceID int64, identifier, requestHash string) (r Receipt, ok bool, err error) {
	var row receiptRow
	err = t.get(ctx, &row, receiptSQL, senderInstanceID, identifier, requestHash)
	if errors.Is(err, sql.ErrNoRows) {
		return Receipt{}, false, nil
	}
	if err != nil {
		return Receipt{}, false, fmt.Errorf("look up receipt of %s: %w", identifier, err)
	}
	return row.receipt(senderInstanceID, identifier, requestHash), true, nil
}

// scanReceipt reads the result of receiptSQLPG.
func scanReceipt(rows pgx.Rows, senderInstanceID int64, identifier, requestHash string) (Receipt, bool, error) {
	var row receiptRow
	err := scanOne(rows, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return Receipt{}, false, nil
	}
	if err != nil {
		return Receipt{}, false, fmt.Errorf("look up receipt of %s: %w", identifier, err)
	}
	return row.receipt(senderInstanceID, identifier, requestHash), true, nil
}

// InsertReceipt records an accepted POST.
func (t *Tx) InsertReceipt(ctx context.Context, r Receipt) error {
	if r.CreatedAt == 0 {
		return errors.New("insert receipt: CreatedAt is zero")
	}
	_, err := t.exec(ctx, `INSERT INTO post_receipts (sender_instance_id, message_identifier, request_hash, message_id,
		response_data, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		r.SenderInstanceID, r.MessageIdentifier, r.RequestHash, r.MessageID, strings.Join(r.Data, "\n"), r.CreatedAt)
	if err != nil {
		return fmt.Errorf("store receipt of %s: %w", r.MessageIdentifier, err)
	}
	return nil
}
