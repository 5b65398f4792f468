package kafkaexporter

// Records of one export call: spans grouped by trace, one TracesData value
// per trace, split at span boundaries when the value would pass the size
// limit. Pure logic, no I/O: the exporter hands the result to the producer.

import (
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxValueBytes is the contract's limit on a record value before compression.
const MaxValueBytes = 1_000_000

// Header names and values every record carries.
const (
	HeaderEncoding      = "encoding"
	EncodingOTLPProto   = "otlp_proto"
	HeaderSchemaVersion = "schema-version"
	SchemaVersion       = "1"
)

// TraceRecord is one record value for one trace.
type TraceRecord struct {
	Key   string // trace id, 32 lowercase hex characters
	Value []byte // encoded TracesData holding spans of this trace only
	Spans int    // how many spans the value holds
}

// OversizedSpanError reports a span that encodes over the limit on its own,
// which no split can publish.
type OversizedSpanError struct {
	TraceID string
	SpanID  string
	Bytes   int
	Limit   int
}

func (e *OversizedSpanError) Error() string {
	return fmt.Sprintf("span %s of trace %s encodes to %d bytes with its resource and scope, over the %d-byte record limit: not published",
		e.SpanID, e.TraceID, e.Bytes, e.Limit)
}

// GroupByTrace splits spans by trace id, keeping the order in which traces
// and spans first appear.
func GroupByTrace(spans []sdktrace.ReadOnlySpan) ([]trace.TraceID, map[trace.TraceID][]sdktrace.ReadOnlySpan) {
	var order []trace.TraceID
	groups := map[trace.TraceID][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s == nil {
			continue
		}
		id := s.SpanContext().TraceID()
		if _, seen := groups[id]; !seen {
			order = append(order, id)
		}
		groups[id] = append(groups[id], s)
	}
	return order, groups
}

// BuildRecords encodes the spans of an export call as records: one per trace,
// or several for a trace whose value would pass limit. Spans that cannot be
// published (a single span over the limit) are returned as errors next to the
// records that can.
func BuildRecords(spans []sdktrace.ReadOnlySpan, limit int) ([]TraceRecord, []error) {
	order, groups := GroupByTrace(spans)
	var records []TraceRecord
	var errs []error
	for _, id := range order {
		key := TraceKey(id)
		rs := ResourceSpans(groups[id])
		parts, err := SplitTrace(rs, limit)
		if err != nil {
			if o, ok := err.(*OversizedSpanError); ok {
				o.TraceID = key
			}
			errs = append(errs, err)
		}
		for _, p := range parts {
			value, merr := proto.MarshalOptions{Deterministic: true}.Marshal(p)
			if merr != nil {
				errs = append(errs, fmt.Errorf("trace %s: encoding TracesData: %w", key, merr))
				continue
			}
			if len(value) > limit {
				// SplitTrace computes sizes exactly; this guards the arithmetic.
				errs = append(errs, fmt.Errorf("trace %s: record of %d bytes passes the %d-byte limit", key, len(value), limit))
				continue
			}
			records = append(records, TraceRecord{Key: key, Value: value, Spans: countSpans(p)})
		}
	}
	return records, errs
}

// SplitTrace packs the spans of one trace into as few TracesData values as
// it can, in order, each at most limit bytes encoded. Each part repeats the
// resource and scope of its spans. Spans too large on their own are left
// out and reported with an *OversizedSpanError (the first one met); the
// other spans are still returned.
func SplitTrace(rs []*tracepb.ResourceSpans, limit int) ([]*tracepb.TracesData, error) {
	whole := &tracepb.TracesData{ResourceSpans: rs}
	if proto.Size(whole) <= limit {
		return []*tracepb.TracesData{whole}, nil
	}
	var parts []*tracepb.TracesData
	var firstErr error
	p := newPacker(limit)
	for _, r := range rs {
		for _, ss := range r.ScopeSpans {
			for _, span := range ss.Spans {
				if p.fits(r, ss, span) {
					p.add(r, ss, span)
					continue
				}
				if !p.empty() {
					parts = append(parts, p.take())
				}
				if p.fits(r, ss, span) {
					p.add(r, ss, span)
					continue
				}
				if firstErr == nil {
					firstErr = &OversizedSpanError{
						SpanID: fmt.Sprintf("%x", span.SpanId),
						Bytes:  p.sizeAlone(r, ss, span),
						Limit:  limit,
					}
				}
			}
		}
	}
	if !p.empty() {
		parts = append(parts, p.take())
	}
	return parts, firstErr
}

// packer builds one TracesData and knows its exact encoded size as spans are
// added: a length-delimited field costs its tag (1 byte for these field
// numbers), the varint of its length and its body.
type packer struct {
	limit int
	td    *tracepb.TracesData
	// closed is the encoded size of the ResourceSpans before the current one.
	closed int
	// rsOther is the body size of the current ResourceSpans without its
	// current ScopeSpans; ssBody the body size of that ScopeSpans.
	rsOther, ssBody int
	curRS           *tracepb.ResourceSpans // source of the current part's last ResourceSpans
	curSS           *tracepb.ScopeSpans    // source of its last ScopeSpans
	outRS           *tracepb.ResourceSpans
	outSS           *tracepb.ScopeSpans
}

func newPacker(limit int) *packer { return &packer{limit: limit} }

func field(body int) int { return 1 + protowire.SizeVarint(uint64(body)) + body }

// rsHead is a ResourceSpans body without scope spans; ssHead a ScopeSpans
// body without spans.
func rsHead(r *tracepb.ResourceSpans) int {
	return proto.Size(&tracepb.ResourceSpans{Resource: r.Resource, SchemaUrl: r.SchemaUrl})
}

func ssHead(ss *tracepb.ScopeSpans) int {
	return proto.Size(&tracepb.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl})
}

func (p *packer) empty() bool { return p.td == nil }

// sizeWith returns the encoded size of the part if span were added.
func (p *packer) sizeWith(r *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, span *tracepb.Span) int {
	s := field(proto.Size(span))
	switch {
	case p.td != nil && r == p.curRS && ss == p.curSS:
		return p.closed + field(p.rsOther+field(p.ssBody+s))
	case p.td != nil && r == p.curRS:
		return p.closed + field(p.rsOther+field(p.ssBody)+field(ssHead(ss)+s))
	case p.td != nil:
		return p.closed + field(p.rsOther+field(p.ssBody)) + field(rsHead(r)+field(ssHead(ss)+s))
	default:
		return field(rsHead(r) + field(ssHead(ss)+s))
	}
}

func (p *packer) sizeAlone(r *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, span *tracepb.Span) int {
	return field(rsHead(r) + field(ssHead(ss)+field(proto.Size(span))))
}

func (p *packer) fits(r *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, span *tracepb.Span) bool {
	return p.sizeWith(r, ss, span) <= p.limit
}

func (p *packer) add(r *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, span *tracepb.Span) {
	s := field(proto.Size(span))
	if p.td == nil {
		p.td = &tracepb.TracesData{}
		p.closed = 0
		p.curRS, p.curSS = nil, nil
	}
	if r != p.curRS {
		if p.curRS != nil {
			p.closed += field(p.rsOther + field(p.ssBody))
		}
		p.outRS = &tracepb.ResourceSpans{Resource: r.Resource, SchemaUrl: r.SchemaUrl}
		p.td.ResourceSpans = append(p.td.ResourceSpans, p.outRS)
		p.curRS, p.curSS = r, nil
		p.rsOther = rsHead(r)
	}
	if ss != p.curSS {
		if p.curSS != nil {
			p.rsOther += field(p.ssBody)
		}
		p.outSS = &tracepb.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
		p.outRS.ScopeSpans = append(p.outRS.ScopeSpans, p.outSS)
		p.curSS = ss
		p.ssBody = ssHead(ss)
	}
	p.outSS.Spans = append(p.outSS.Spans, span)
	p.ssBody += s
}

func (p *packer) take() *tracepb.TracesData {
	td := p.td
	*p = packer{limit: p.limit}
	return td
}

func countSpans(td *tracepb.TracesData) int {
	n := 0
	for _, r := range td.ResourceSpans {
		for _, ss := range r.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}
