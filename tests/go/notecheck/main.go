// Command notecheck checks ixb's C2SP notes with the ecosystem's own code.
//
// It is the referee of tests/interop: ixb writes checkpoints, cosignatures
// and add-checkpoint requests in Python, and this program reads them with
// golang.org/x/mod/sumdb/note (signed notes, Ed25519), golang.org/x/mod/sumdb/tlog
// (RFC 6962 proofs) and filippo.io/torchwood (checkpoints, cosignature/v1),
// then prints what it verified as one JSON object. It exits 1 with the
// library's error on stderr when anything does not verify.
//
//	notecheck open [-log vkey]... [-witness vkey]... < note
//	notecheck add-checkpoint -log vkey -old-root base64 < request-body
//	notecheck inclusion -log vkey -index N -leaf base64 [-proof base64]... < note
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type signature struct {
	Name      string `json:"name"`
	KeyHash   string `json:"key_hash"`
	Kind      string `json:"kind"`
	Timestamp int64  `json:"timestamp,omitempty"`
}

type result struct {
	Origin     string      `json:"origin"`
	Size       int64       `json:"size"`
	Root       string      `json:"root"`
	Extensions string      `json:"extensions,omitempty"`
	Signatures []signature `json:"signatures"`
	Unverified int         `json:"unverified"`
	OldSize    *int64      `json:"old_size,omitempty"`
	Proof      string      `json:"proof,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: notecheck open|add-checkpoint|inclusion [flags] < input"))
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var logs, witnesses, proof list
	flags.Var(&logs, "log", "the log's Ed25519 verifier key (repeatable)")
	flags.Var(&witnesses, "witness", "a witness's cosignature/v1 verifier key (repeatable)")
	flags.Var(&proof, "proof", "an inclusion proof hash, base64 (repeatable, in order)")
	oldRoot := flags.String("old-root", "", "add-checkpoint: the root at the old size, base64")
	index := flags.Int64("index", -1, "inclusion: the leaf index")
	leaf := flags.String("leaf", "", "inclusion: the leaf hash, base64")
	if err := flags.Parse(os.Args[2:]); err != nil {
		fail(err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var out result
	switch os.Args[1] {
	case "open":
		out, err = open(input, logs, witnesses)
	case "add-checkpoint":
		out, err = addCheckpoint(input, logs, *oldRoot)
	case "inclusion":
		out, err = inclusion(input, logs, *index, *leaf, proof)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "notecheck:", err)
	os.Exit(1)
}

func verifiers(logs, witnesses list) (note.Verifiers, map[string]string, error) {
	var all []note.Verifier
	kinds := map[string]string{}
	for _, k := range logs {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, nil, fmt.Errorf("log key: %w", err)
		}
		all = append(all, v)
		kinds[fmt.Sprintf("%s/%08x", v.Name(), v.KeyHash())] = "log"
	}
	for _, k := range witnesses {
		v, err := torchwood.NewCosignatureVerifier(k)
		if err != nil {
			return nil, nil, fmt.Errorf("witness key: %w", err)
		}
		all = append(all, v)
		kinds[fmt.Sprintf("%s/%08x", v.Name(), v.KeyHash())] = "cosignature"
	}
	return note.VerifierList(all...), kinds, nil
}

func open(msg []byte, logs, witnesses list) (result, error) {
	known, kinds, err := verifiers(logs, witnesses)
	if err != nil {
		return result{}, err
	}
	n, err := note.Open(msg, known)
	if err != nil {
		return result{}, err
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil {
		return result{}, err
	}
	out := result{
		Origin:     c.Origin,
		Size:       c.N,
		Root:       base64.StdEncoding.EncodeToString(c.Hash[:]),
		Extensions: c.Extension,
		Unverified: len(n.UnverifiedSigs),
	}
	for _, s := range n.Sigs {
		kind := kinds[fmt.Sprintf("%s/%08x", s.Name, s.Hash)]
		entry := signature{Name: s.Name, KeyHash: fmt.Sprintf("%08x", s.Hash), Kind: kind}
		if kind == "cosignature" {
			if entry.Timestamp, err = torchwood.CosignatureTimestamp(s); err != nil {
				return result{}, err
			}
		}
		out.Signatures = append(out.Signatures, entry)
	}
	return out, nil
}

func addCheckpoint(body []byte, logs list, oldRoot string) (result, error) {
	head, rest, ok := strings.Cut(string(body), "\n\n")
	if !ok {
		return result{}, errors.New("no blank line after the proof")
	}
	lines := strings.Split(head, "\n")
	old, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return result{}, errors.New("no old size line")
	}
	oldSize, err := strconv.ParseInt(old, 10, 64)
	if err != nil || strconv.FormatInt(oldSize, 10) != old {
		return result{}, errors.New("malformed old size")
	}
	var proof tlog.TreeProof
	for _, line := range lines[1:] {
		h, err := tlog.ParseHash(line)
		if err != nil {
			return result{}, err
		}
		proof = append(proof, h)
	}
	out, err := open([]byte(rest), logs, nil)
	if err != nil {
		return result{}, err
	}
	out.OldSize = &oldSize
	if oldSize > 0 {
		before, err := tlog.ParseHash(oldRoot)
		if err != nil {
			return result{}, fmt.Errorf("old root: %w", err)
		}
		after, _ := tlog.ParseHash(out.Root)
		if err := tlog.CheckTree(proof, out.Size, after, oldSize, before); err != nil {
			return result{}, err
		}
	} else if len(proof) != 0 {
		return result{}, errors.New("a proof from the empty tree")
	}
	out.Proof = "consistent"
	return out, nil
}

func inclusion(msg []byte, logs list, index int64, leaf string, proof list) (result, error) {
	out, err := open(msg, logs, nil)
	if err != nil {
		return result{}, err
	}
	leafHash, err := tlog.ParseHash(leaf)
	if err != nil {
		return result{}, fmt.Errorf("leaf: %w", err)
	}
	var path tlog.RecordProof
	for _, p := range proof {
		h, err := tlog.ParseHash(p)
		if err != nil {
			return result{}, err
		}
		path = append(path, h)
	}
	root, _ := tlog.ParseHash(out.Root)
	if err := tlog.CheckRecord(path, out.Size, root, index, leafHash); err != nil {
		return result{}, err
	}
	out.Proof = "included"
	return out, nil
}
