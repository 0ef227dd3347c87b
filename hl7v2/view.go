package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
)

// View is the message as route expressions see it (`msg`), with HL7's 1-based numbering:
//
//	msg.PID[3][1]            component 1 of the first repetition of PID-3 (a string)
//	msg.PID[3][0]            that repetition as text, components joined by ^
//	msg.PID[3].repeats       every repetition of PID-3, each like msg.PID[3]
//	msg.PID[0]               the segment's name; msg.PID is the first PID segment
//	msg.segments             every segment in order: filter(msg.segments, #[0] == "OBX")
//	msg.PID[30]?.[1]         nil instead of an error for a field the segment does not have
//
// A component with subcomponents is its text with & between them; hl7(msg, "PID-5.1.2") reads one, and
// hl7(msg, "PID-3(2).1") a later repetition. Values are unescaped.
func (m *Message) View() map[string]any {
	v := map[string]any{}
	all := make([]any, 0, len(m.Segments))
	for _, s := range m.Segments {
		sv := s.view(m.Delims)
		all = append(all, sv)
		if _, ok := v[s.Name]; !ok {
			v[s.Name] = sv
		}
	}
	v["segments"] = all
	v[messageKey] = m
	return v
}

// messageKey holds the parsed message inside a view, for ViewPath.
const messageKey = "$message"

// ViewPath is Path on the message a View came from: the hl7(msg, path) function of route expressions.
func ViewPath(view any, path string) (string, error) {
	v, _ := view.(map[string]any)
	m, ok := v[messageKey].(*Message)
	if !ok {
		return "", fmt.Errorf("hl7(msg, %q): the first argument must be msg, the HL7 message of an mllp input", path)
	}
	return m.Path(path)
}

func (s Segment) view(d Delimiters) map[any]any {
	sv := make(map[any]any, len(s.Fields))
	sv[0] = s.Name
	for i := 1; i < len(s.Fields); i++ {
		f := s.Fields[i]
		reps := make([]any, len(f))
		for r := range f {
			reps[r] = repetitionView(f[r], d)
		}
		first := map[any]any{0: ""}
		if len(reps) > 0 {
			first = reps[0].(map[any]any)
		}
		fv := make(map[any]any, len(first)+1)
		for k, x := range first {
			fv[k] = x
		}
		fv["repeats"] = reps
		sv[i] = fv
	}
	return sv
}

func repetitionView(r Repetition, d Delimiters) map[any]any {
	rv := make(map[any]any, len(r)+1)
	texts := make([]string, len(r))
	for c := range r {
		texts[c] = strings.Join(r[c], string(d.subOrAmp()))
		rv[c+1] = texts[c]
	}
	rv[0] = strings.Join(texts, string(d.Component))
	return rv
}

func (d Delimiters) subOrAmp() byte {
	if d.Subcomponent == 0 {
		return '&'
	}
	return d.Subcomponent
}

// Path reads one value by a terser-style path: SEG[(n)]-F[(r)][.C[.S]], all 1-based: "PID-3.1",
// "PID-3(2).1" (second repetition), "PID-5.1.2" (subcomponent), "OBX(2)-5" (second OBX). Absent parts
// give "".
func (m *Message) Path(p string) (string, error) {
	segPart, rest, ok := strings.Cut(p, "-")
	if !ok {
		return "", fmt.Errorf("hl7 path %q: want SEG-FIELD[.COMPONENT[.SUBCOMPONENT]], e.g. PID-3.1", p)
	}
	name, segN, err := indexed(segPart)
	if err != nil || len(name) != 3 {
		return "", fmt.Errorf("hl7 path %q: bad segment %q", p, segPart)
	}
	parts := strings.Split(rest, ".")
	if len(parts) > 3 {
		return "", fmt.Errorf("hl7 path %q: at most field.component.subcomponent", p)
	}
	fieldStr, rep, err := indexed(parts[0])
	if err != nil {
		return "", fmt.Errorf("hl7 path %q: %w", p, err)
	}
	nums := []int{0, 1, 1}
	if nums[0], err = strconv.Atoi(fieldStr); err != nil || nums[0] < 1 {
		return "", fmt.Errorf("hl7 path %q: field %q is not a number from 1", p, fieldStr)
	}
	for i := 1; i < len(parts); i++ {
		if nums[i], err = strconv.Atoi(parts[i]); err != nil || nums[i] < 1 {
			return "", fmt.Errorf("hl7 path %q: %q is not a number from 1", p, parts[i])
		}
	}
	seen := 0
	for _, s := range m.Segments {
		if s.Name != name {
			continue
		}
		if seen++; seen == segN {
			if len(parts) == 1 {
				// A whole field: its components as text.
				if nums[0] >= len(s.Fields) || rep > len(s.Fields[nums[0]]) {
					return "", nil
				}
				return repetitionView(s.Fields[nums[0]][rep-1], m.Delims)[0].(string), nil
			}
			if len(parts) == 2 {
				// A whole component: its subcomponents as text, as the view shows it.
				return s.componentText(nums[0], rep, nums[1], m.Delims), nil
			}
			return s.value(nums[0], rep, nums[1], nums[2]), nil
		}
	}
	return "", nil
}

func (s Segment) componentText(field, rep, comp int, d Delimiters) string {
	if field < 1 || field >= len(s.Fields) || rep < 1 || rep > len(s.Fields[field]) || comp < 1 || comp > len(s.Fields[field][rep-1]) {
		return ""
	}
	return strings.Join(s.Fields[field][rep-1][comp-1], string(d.subOrAmp()))
}

// indexed splits "PID(2)" into "PID" and 2; without brackets the index is 1.
func indexed(s string) (string, int, error) {
	name, idx, ok := strings.Cut(s, "(")
	if !ok {
		return s, 1, nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(idx, ")"))
	if err != nil || n < 1 || !strings.HasSuffix(idx, ")") {
		return "", 0, fmt.Errorf("bad repetition %q (1-based, e.g. (2))", s)
	}
	return name, n, nil
}
