// Package mllp is the HL7 v2 adapter pair over MLLP (the Minimal Lower Layer Protocol every hospital
// interface engine speaks): an inbound that listens for messages and answers each with an ACK from the
// route's outcome, and an outbound that sends a message and waits for its ACK.
package mllp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MLLP frame: <VT> message <FS><CR>.
const (
	startBlock = 0x0b
	endBlock   = 0x1c
	carriage   = 0x0d
)

// errFrameTooLarge is a frame longer than the configured limit.
var errFrameTooLarge = errors.New("mllp: message larger than max_message")

// readFrame reads one framed message. Bytes before the start block (line noise, a keep-alive newline) are
// skipped; io.EOF before a start block means the peer closed the connection between messages.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == startBlock {
			break
		}
	}
	var msg []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("mllp: connection closed inside a message: %w", io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if b == endBlock {
			next, err := r.ReadByte()
			if err != nil {
				return nil, fmt.Errorf("mllp: no carriage return after the end block: %w", err)
			}
			if next != carriage {
				return nil, fmt.Errorf("mllp: end block followed by 0x%02x, not a carriage return", next)
			}
			return msg, nil
		}
		if len(msg) >= max {
			return nil, errFrameTooLarge
		}
		msg = append(msg, b)
	}
}

// writeFrame writes msg as one frame.
func writeFrame(w io.Writer, msg []byte) error {
	buf := make([]byte, 0, len(msg)+3)
	buf = append(buf, startBlock)
	buf = append(buf, msg...)
	buf = append(buf, endBlock, carriage)
	_, err := w.Write(buf)
	return err
}
