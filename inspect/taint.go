package inspect

import (
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/tidwall/gjson"
	"golang.org/x/text/unicode/norm"
)

// Data-flow taint (issue 6): what the agent reads is fingerprinted; every
// outbound request to another destination is checked for those fingerprints.
//
// Normalisation: NFKC, case folding, every run of characters that are not
// letters or digits becomes one space (so whitespace, punctuation, JSON
// syntax and line breaks do not matter). A JSON text is fingerprinted twice,
// as written and as its values only (keys dropped), so that records copied
// out as CSV or prose still match.
//
// Hashing: k-grams of TaintOptions.K characters (default 24 ≈ 4-5 words)
// over the normalised text, hashed with a 64-bit polynomial rolling hash,
// then winnowed (Schleimer, Wilkerson, Aiken 2003) with a window of W
// hashes (default 8): every window keeps its minimum (rightmost on ties).
// Winnowing guarantees that any shared normalised run of at least
// W+K-1 characters yields at least one shared hash, and a run of length L
// yields at least floor((L-K+1)/W). Reordered lines only lose the k-grams that
// straddle a line boundary.
//
// Boilerplate: hashes of every k-gram of a small shipped list of common
// texts (licence headers, lorem ipsum, e-mail footers, common API keys) are
// dropped from every fingerprint.

// Defaults for TaintOptions.
const (
	DefaultTaintK          = 24
	DefaultTaintWindow     = 8
	DefaultTaintMinMatched = 3
	DefaultTaintMaxHashes  = 1 << 20
)

// TaintOptions configures fingerprinting and matching. Fingerprints and the
// index they are matched against must use the same K and Window.
type TaintOptions struct {
	// K is the k-gram length in normalised characters.
	K int
	// Window is the winnowing window in hashes.
	Window int
	// MinMatched is the number of shared hashes below which Match reports
	// nothing. With the defaults, 3 hashes means a copied run of at least
	// 3*8+24-1 = 47 normalised characters is always reported.
	MinMatched int
	// MaxHashes caps the hashes a TaintIndex keeps; when over, the oldest
	// sources are evicted whole (FIFO).
	MaxHashes int
}

func (o TaintOptions) withDefaults() TaintOptions {
	if o.K <= 0 {
		o.K = DefaultTaintK
	}
	if o.Window <= 0 {
		o.Window = DefaultTaintWindow
	}
	if o.MinMatched <= 0 {
		o.MinMatched = DefaultTaintMinMatched
	}
	if o.MaxHashes <= 0 {
		o.MaxHashes = DefaultTaintMaxHashes
	}
	return o
}

// Fingerprint is the winnowed hash set of a text.
type Fingerprint struct {
	// Hashes are sorted and unique.
	Hashes []uint64
	// Size is the length of the normalised text, in bytes.
	Size int
}

// FingerprintText fingerprints text (see the package notes above on
// normalisation, k-grams and winnowing).
func FingerprintText(text string, opts TaintOptions) Fingerprint {
	opts = opts.withDefaults()
	var hs []uint64
	size := 0
	add := func(s string) {
		n := taintNormalize(s)
		size += len(n)
		hs = append(hs, taintWinnow(n, opts.K, opts.Window)...)
	}
	add(text)
	if t := strings.TrimSpace(text); len(t) > 1 && (t[0] == '{' || t[0] == '[') && gjson.Valid(t) {
		var b strings.Builder
		taintJSONValues(gjson.Parse(t), &b)
		add(b.String())
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	stop := taintStoplistFor(opts)
	hs = slices.DeleteFunc(hs, func(h uint64) bool { return stop[h] })
	return Fingerprint{Hashes: hs, Size: size}
}

// taintJSONValues writes the scalar values of r, one per line, keys dropped.
func taintJSONValues(r gjson.Result, b *strings.Builder) {
	switch {
	case r.IsObject() || r.IsArray():
		r.ForEach(func(_, v gjson.Result) bool {
			taintJSONValues(v, b)
			return true
		})
	case r.Type == gjson.String || r.Type == gjson.Number:
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
}

// taintNormalize applies NFKC, lower-cases and collapses every run of
// non-letter, non-digit characters to one space.
func taintNormalize(s string) string {
	s = norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	space := true
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
			space = false
			continue
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	return strings.TrimSuffix(b.String(), " ")
}

// taintPrime is the rolling hash base.
const taintPrime = 1099511628211

// taintWinnow returns the winnowed k-gram hashes of s (byte k-grams of the
// normalised string). A string shorter than k yields one hash of the whole
// string when it has at least k/2 bytes, else nothing.
func taintWinnow(s string, k, w int) []uint64 {
	if len(s) < k {
		if len(s) >= k/2 {
			return []uint64{taintHash(s)}
		}
		return nil
	}
	n := len(s) - k + 1
	grams := make([]uint64, n)
	var pow uint64 = 1
	for range k - 1 {
		pow *= taintPrime
	}
	var h uint64
	for i := 0; i < k; i++ {
		h = h*taintPrime + uint64(s[i])
	}
	grams[0] = taintMix(h)
	for i := 1; i < n; i++ {
		h = (h-uint64(s[i-1])*pow)*taintPrime + uint64(s[i+k-1])
		grams[i] = taintMix(h)
	}
	if n <= w {
		return []uint64{slices.Min(grams)}
	}
	var out []uint64
	last := -1
	for start := 0; start+w <= n; start++ {
		mi := start
		for j := start + 1; j < start+w; j++ {
			if grams[j] <= grams[mi] {
				mi = j
			}
		}
		if mi != last {
			out = append(out, grams[mi])
			last = mi
		}
	}
	return out
}

// taintMix finalises a rolling hash (splitmix64) so that winnowing minima
// are spread uniformly.
func taintMix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func taintHash(s string) uint64 {
	var h uint64
	for i := 0; i < len(s); i++ {
		h = h*taintPrime + uint64(s[i])
	}
	return taintMix(h)
}

// taintBoilerplate is text shared by everyone; its k-grams never count as
// taint.
var taintBoilerplate = []string{
	"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.",
	"Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated documentation files (the \"Software\"), to deal in the Software without restriction, including without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software",
	"THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.",
	"Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file except in compliance with the License. You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0 Unless required by applicable law or agreed to in writing, software distributed under the License is distributed on an \"AS IS\" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.",
	"This program is free software: you can redistribute it and/or modify it under the terms of the GNU General Public License as published by the Free Software Foundation, either version 3 of the License, or (at your option) any later version.",
	"All rights reserved. Redistribution and use in source and binary forms, with or without modification, are permitted provided that the following conditions are met",
	"This email and any attachments are confidential and may be privileged. If you are not the intended recipient, please notify the sender immediately and delete this message.",
	"You are receiving this email because you subscribed to our newsletter. To unsubscribe, click here. Unsubscribe from this list. Update your preferences. View this email in your browser.",
	"Sent from my iPhone. Get Outlook for iOS. Sent from Mail for Windows.",
	"Thanks for contributing! Please read the contributing guidelines and code of conduct before opening an issue or pull request.",
	"created_at updated_at html_url url id node_id type site_admin avatar_url gravatar_id followers_url following_url gists_url starred_url subscriptions_url organizations_url repos_url events_url received_events_url",
	"https api github com repos https github com users",
	"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title></title></head><body></body></html>",
	"Cookies help us deliver our services. By using our services, you agree to our use of cookies. Accept all cookies. Privacy policy. Terms of service. Cookie settings.",
}

// taintDefaultStop is the boilerplate hash set for DefaultTaintK, built
// once at init.
var taintDefaultStop = taintStoplist(DefaultTaintK)

// taintStoplistFor returns the boilerplate hash set for opts.K.
func taintStoplistFor(opts TaintOptions) map[uint64]bool {
	if opts.K == DefaultTaintK {
		return taintDefaultStop
	}
	return taintStoplist(opts.K)
}

// taintStoplist hashes every k-gram (not only the winnowed ones) of the
// boilerplate texts, so that any selection from boilerplate is dropped.
func taintStoplist(k int) map[uint64]bool {
	m := map[uint64]bool{}
	for _, t := range taintBoilerplate {
		for _, h := range taintWinnow(taintNormalize(t), k, 1) {
			m[h] = true
		}
	}
	return m
}

// TaintSource describes data the agent has read.
type TaintSource struct {
	ActionID string
	Host     string
	Level    Level
	Tags     []string
}

// TaintResult is the answer of TaintIndex.Match.
type TaintResult struct {
	// Sources are the sources whose hashes were found, most matched first.
	Sources []TaintSource
	// Level is the highest level among Sources.
	Level Level
	// Tags is the union of the sources' tags, sorted.
	Tags []string
	// Overlap is the fraction of the outbound text's hashes found in
	// eligible sources.
	Overlap float64
	// Matched is the number of the outbound text's hashes found.
	Matched int
}

// Tainted reports whether the result found any source.
func (r TaintResult) Tainted() bool { return len(r.Sources) > 0 }

// Signal returns the policy contract's signals.taint map: {sources,
// classification, overlap} plus hosts, tags and matched. sources lists
// action ids (the host when a source has no action id).
func (r TaintResult) Signal() map[string]any {
	srcs, hosts := []any{}, []any{}
	for _, s := range r.Sources {
		id := s.ActionID
		if id == "" {
			id = s.Host
		}
		srcs = append(srcs, id)
		if !slices.Contains(hosts, any(s.Host)) {
			hosts = append(hosts, s.Host)
		}
	}
	tags := make([]any, len(r.Tags))
	for i, t := range r.Tags {
		tags[i] = t
	}
	cls := ""
	if r.Level != LevelUnknown {
		cls = r.Level.String()
	}
	return map[string]any{
		"sources":        srcs,
		"hosts":          hosts,
		"classification": cls,
		"tags":           tags,
		"overlap":        r.Overlap,
		"matched":        float64(r.Matched),
	}
}

// TaintIndex holds one session's fingerprints. It is safe for concurrent use.
// Memory is bounded by TaintOptions.MaxHashes (about 45 bytes a hash: the
// default cap of 2^20 hashes is roughly 45 MB): when adding a source goes
// over the cap, the oldest sources are evicted whole, first in first out.
type TaintIndex struct {
	opts    TaintOptions
	mu      sync.RWMutex
	next    uint32
	sources map[uint32]*taintEntry
	order   []uint32
	// byHash maps a hash to the oldest source holding it; the few hashes
	// held by several sources list the others in shared.
	byHash map[uint64]uint32
	shared map[uint64][]uint32
	total  int
}

// taintMaxSharing bounds how many sources besides the first are kept for
// one hash.
const taintMaxSharing = 64

type taintEntry struct {
	src    TaintSource
	host   string
	hashes []uint64
}

// NewTaintIndex returns an empty index.
func NewTaintIndex(opts TaintOptions) *TaintIndex {
	return &TaintIndex{opts: opts.withDefaults(), sources: map[uint32]*taintEntry{}, byHash: map[uint64]uint32{}, shared: map[uint64][]uint32{}}
}

// Options returns the index's options with defaults applied; fingerprints
// matched against it must be computed with the same K and Window.
func (x *TaintIndex) Options() TaintOptions { return x.opts }

// Len returns the number of hashes held.
func (x *TaintIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.total
}

// Add records that the agent read data with fingerprint fp from source.
func (x *TaintIndex) Add(source TaintSource, fp Fingerprint) {
	if len(fp.Hashes) == 0 {
		return
	}
	hs := slices.Clone(fp.Hashes)
	if len(hs) > x.opts.MaxHashes {
		hs = hs[:x.opts.MaxHashes]
	}
	source.Tags = slices.Clone(source.Tags)
	x.mu.Lock()
	defer x.mu.Unlock()
	id := x.next
	x.next++
	x.sources[id] = &taintEntry{src: source, host: classifyHostname(source.Host), hashes: hs}
	x.order = append(x.order, id)
	for _, h := range hs {
		if _, ok := x.byHash[h]; ok {
			others := append(x.shared[h], id)
			if len(others) > taintMaxSharing {
				// The same text read many times: remember the newest
				// copies only, so Match stays bounded per hash.
				others = others[1:]
			}
			x.shared[h] = others
		} else {
			x.byHash[h] = id
		}
	}
	x.total += len(hs)
	for x.total > x.opts.MaxHashes && len(x.order) > 1 {
		x.evictOldest()
	}
}

func (x *TaintIndex) evictOldest() {
	id := x.order[0]
	x.order = x.order[1:]
	e := x.sources[id]
	delete(x.sources, id)
	for _, h := range e.hashes {
		others := x.shared[h]
		switch {
		case x.byHash[h] != id:
			others = slices.DeleteFunc(others, func(i uint32) bool { return i == id })
		case len(others) > 0:
			x.byHash[h] = others[0]
			others = others[1:]
		default:
			delete(x.byHash, h)
		}
		if len(others) == 0 {
			delete(x.shared, h)
		} else {
			x.shared[h] = others
		}
	}
	x.total -= len(e.hashes)
}

// MatchText fingerprints text with the index's options and matches it.
func (x *TaintIndex) MatchText(text, destHost string) TaintResult {
	return x.Match(FingerprintText(text, x.opts), destHost)
}

// Match reports which sources' data appears in fp, ignoring sources read
// from destHost itself (sending data back where it came from is not a
// flow). Nothing is reported below TaintOptions.MinMatched shared hashes.
func (x *TaintIndex) Match(fp Fingerprint, destHost string) TaintResult {
	if len(fp.Hashes) == 0 {
		return TaintResult{}
	}
	dest := classifyHostname(destHost)
	x.mu.RLock()
	defer x.mu.RUnlock()
	counts := map[uint32]int{}
	matched := 0
	for _, h := range fp.Hashes {
		first, ok := x.byHash[h]
		if !ok {
			continue
		}
		hit := false
		count := func(id uint32) {
			if x.sources[id].host != dest {
				counts[id]++
				hit = true
			}
		}
		count(first)
		for _, id := range x.shared[h] {
			count(id)
		}
		if hit {
			matched++
		}
	}
	if matched < x.opts.MinMatched {
		return TaintResult{}
	}
	ids := make([]uint32, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uint32) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return int(a) - int(b)
	})
	r := TaintResult{Matched: matched, Overlap: float64(matched) / float64(len(fp.Hashes))}
	for _, id := range ids {
		s := x.sources[id].src
		s.Tags = slices.Clone(s.Tags)
		r.Sources = append(r.Sources, s)
		r.Level = max(r.Level, s.Level)
		r.Tags = append(r.Tags, s.Tags...)
	}
	slices.Sort(r.Tags)
	r.Tags = slices.Compact(r.Tags)
	return r
}
