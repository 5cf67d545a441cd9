package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"time"
)

// websocketGUID is the key suffix of the opening handshake (RFC 6455 section 1.3).
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxFrame bounds the payload of one frame the echo accepts.
const maxFrame = 1 << 20

// websocketEcho is a WebSocket endpoint (RFC 6455) that sends every data
// frame back as it came, answers pings and echoes the close. The 101
// response names the replica in X-Replica. It is small on purpose: no
// extensions, no subprotocols.
func websocketEcho(host string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if r.Method != http.MethodGet || !hasToken(r.Header, "Connection", "upgrade") ||
			!hasToken(r.Header, "Upgrade", "websocket") || key == "" {
			w.Header().Set("X-Replica", host)
			http.Error(w, "this is a WebSocket echo: connect with a WebSocket client", http.StatusUpgradeRequired)
			return
		}
		if r.Header.Get("Sec-WebSocket-Version") != "13" {
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, "WebSocket version 13 only", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(key + websocketGUID))
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\nX-Replica: " + host + "\r\n\r\n")
		if brw.Flush() != nil {
			return
		}
		for {
			// An idle connection is kept for up to ten minutes.
			conn.SetReadDeadline(time.Now().Add(10 * time.Minute))
			fin, op, payload, err := readFrame(brw.Reader)
			if err != nil {
				return
			}
			switch op {
			case 0x8: // close: echo its status, then end
				writeFrame(brw.Writer, true, 0x8, payload)
				brw.Flush()
				return
			case 0x9: // ping
				writeFrame(brw.Writer, true, 0xA, payload)
			case 0xA: // pong: nothing to do
				continue
			case 0x0, 0x1, 0x2: // continuation, text, binary: echo as it came
				writeFrame(brw.Writer, fin, op, payload)
			default:
				writeFrame(brw.Writer, true, 0x8, []byte{0x03, 0xEA}) // 1002: protocol error
				brw.Flush()
				return
			}
			if brw.Flush() != nil {
				return
			}
		}
	}
}

// readFrame reads one client frame and unmasks its payload.
func readFrame(r *bufio.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0F
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if !masked || n > maxFrame { // clients must mask (section 5.1)
		return false, 0, nil, io.ErrUnexpectedEOF
	}
	var mask [4]byte
	if _, err = io.ReadFull(r, mask[:]); err != nil {
		return
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return fin, op, payload, nil
}

// writeFrame writes one unmasked server frame.
func writeFrame(w *bufio.Writer, fin bool, op byte, payload []byte) {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	w.WriteByte(b0)
	switch n := len(payload); {
	case n < 126:
		w.WriteByte(byte(n))
	case n <= 0xFFFF:
		w.WriteByte(126)
		w.Write(binary.BigEndian.AppendUint16(nil, uint16(n)))
	default:
		w.WriteByte(127)
		w.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
	}
	w.Write(payload)
}

// hasToken reports whether a comma-separated header holds token, in any case.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
