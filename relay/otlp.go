package relay

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/slim/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// signal is one of the three OTLP/HTTP endpoints.
type signal int

const (
	sigLogs signal = iota
	sigTraces
	sigMetrics
)

func (s signal) String() string { return [...]string{"logs", "traces", "metrics"}[s] }

// encoding of a request body.
type encoding int

const (
	encProto encoding = iota
	encJSON
)

// errTooLarge: the body, once decompressed, is over the limit.
var errTooLarge = errors.New("body too large")

// readBody reads a request body, gunzipping it when gzip is true, and
// refuses more than limit bytes after decompression (a gzip bomb stops at
// limit+1 bytes read). The error never quotes the body.
func readBody(r io.Reader, gz bool, limit int64) ([]byte, error) {
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("not gzip: %w", errNoText(err))
		}
		defer zr.Close()
		r = zr
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, fmt.Errorf("cannot read the body: %w", errNoText(err))
	}
	if n > limit {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// errNoText keeps an error's class, never text from the input.
func errNoText(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("truncated")
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return errors.New("corrupt")
	}
	return errors.New("unreadable")
}

var jsonOpts = protojson.UnmarshalOptions{DiscardUnknown: true}
var protoOpts = proto.UnmarshalOptions{DiscardUnknown: true}

// decode turns a body into the export request of its signal, with the
// OpenTelemetry proto packages (protobuf) and protojson (OTLP/JSON; unknown
// fields are ignored, as the OTLP specification asks of receivers).
func decode(sig signal, enc encoding, body []byte) (proto.Message, error) {
	var m proto.Message
	switch sig {
	case sigLogs:
		m = &collogs.ExportLogsServiceRequest{}
	case sigTraces:
		m = &coltrace.ExportTraceServiceRequest{}
	default:
		m = &colmetrics.ExportMetricsServiceRequest{}
	}
	var err error
	if enc == encJSON {
		err = jsonOpts.Unmarshal(body, m)
	} else {
		err = protoOpts.Unmarshal(body, m)
	}
	if err != nil {
		// protojson's messages quote the input: say only what failed.
		return nil, fmt.Errorf("malformed OTLP/%s %s request", map[encoding]string{encProto: "protobuf", encJSON: "JSON"}[enc], sig)
	}
	return m, nil
}

// fixID undoes protojson's reading of an OTLP/JSON id: the specification
// writes trace and span ids in hex, protojson reads bytes fields as
// base64, so a 16-hex-digit span id arrives as 12 bytes. Re-encoding them
// as base64 gives the hex text back.
func fixID(b []byte, size int) []byte {
	if len(b) == size || len(b) != size*2*3/4 {
		return b
	}
	h := base64.StdEncoding.EncodeToString(b)
	if out, err := hex.DecodeString(h); err == nil && len(out) == size {
		return out
	}
	return b
}

// Attribute access: a linear scan (a record has a few dozen attributes;
// a map per record would cost more than it saves).

func attr(kvs []*common.KeyValue, key string) *common.AnyValue {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}

// str is a string attribute ("" when absent or not a string).
func str(kvs []*common.KeyValue, key string) string {
	v := attr(kvs, key)
	if v == nil {
		return ""
	}
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	}
	return ""
}

// num is a numeric attribute, whether the CLI sent it as a number or as a
// decimal string (Claude Code does both); ok is false when absent or not a
// number.
func num(kvs []*common.KeyValue, key string) (float64, bool) {
	v := attr(kvs, key)
	if v == nil {
		return 0, false
	}
	switch x := v.GetValue().(type) {
	case *common.AnyValue_IntValue:
		return float64(x.IntValue), true
	case *common.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return 0, false
		}
		return x.DoubleValue, true
	case *common.AnyValue_StringValue:
		f, err := strconv.ParseFloat(strings.TrimSpace(x.StringValue), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// integer is num bounded to what a count or a duration can be.
func integer(kvs []*common.KeyValue, key string) (int64, bool) {
	f, ok := num(kvs, key)
	if !ok || f < 0 {
		return 0, false
	}
	if f > 1e15 {
		f = 1e15
	}
	return int64(f), true
}

// boolean is a boolean attribute, sent as a bool or as "true"/"false".
func boolean(kvs []*common.KeyValue, key string) (bool, bool) {
	v := attr(kvs, key)
	if v == nil {
		return false, false
	}
	switch x := v.GetValue().(type) {
	case *common.AnyValue_BoolValue:
		return x.BoolValue, true
	case *common.AnyValue_StringValue:
		b, err := strconv.ParseBool(x.StringValue)
		return b, err == nil
	}
	return false, false
}

// strs is a list-of-strings attribute (Gemini's finish_reasons).
func strs(kvs []*common.KeyValue, key string) []string {
	v := attr(kvs, key)
	if v == nil {
		return nil
	}
	if s, ok := v.GetValue().(*common.AnyValue_StringValue); ok {
		return []string{s.StringValue}
	}
	var out []string
	for _, e := range v.GetArrayValue().GetValues() {
		if s, ok := e.GetValue().(*common.AnyValue_StringValue); ok {
			out = append(out, s.StringValue)
		}
	}
	return out
}
