# The sharing decision for one (report, recipient) pair.
#
# input: origin, recipient, report_type, marking, handling_code, facets,
#        observed_at_s, now_s
# data.agreements: {id: agreement} as written by broker.domain.agreements
#
# The evaluation time is read only against agreements' validity bounds and
# the observation time only to compute the embargo's not-before instant:
# broker/policy/cache.py relies on both (it caches per validity interval
# and recomputes not_before_s from the rules).
#
# Three steps, each a set below:
#
# 1. cover: an agreement covers a report when the origin may send to the
#    recipient under it, it is in force now and it lists the report type.
#    One that does not cover neither allows nor forbids (`not_covering`).
# 2. precedence: a covering agreement that declares precedence over another
#    covering one for this report type sets the other aside (lex specialis);
#    what is left decides (`governing`).
# 3. most protective: any prohibition of a governing agreement refuses
#    (marking above its ceiling, a handling code it does not carry, H2
#    without consent, an excluded facet); otherwise every governing
#    agreement's field rules apply (the strictest per field, applied by
#    broker/enforcer/stages/derive.py) and the longest embargo.
#
# Default deny: `decision.allow` is true only when some agreement governs
# and none refuses. An unknown marking or a missing field makes a check
# fail, never pass.
package ixb.sharing

import rego.v1

marking_rank := {
	"TLP:CLEAR": 0,
	"TLP:GREEN": 1,
	"TLP:AMBER": 2,
	"TLP:AMBER+STRICT": 3,
	"TLP:RED": 4,
}

# Agreements under which the origin may send to the recipient at all.
on_flow[id] := a if {
	some id, a in data.agreements
	input.origin in a.senders
	input.recipient in a.receivers
	input.origin != input.recipient
}

# --- 1. cover -------------------------------------------------------------------

not_covering contains [id, "agreement_not_yet_valid"] if {
	some id, a in on_flow
	input.now_s < a.valid_from_s
}

not_covering contains [id, "agreement_expired"] if {
	some id, a in on_flow
	a.valid_until_s != null
	input.now_s >= a.valid_until_s
}

not_covering contains [id, "report_type_not_covered"] if {
	some id, a in on_flow
	not input.report_type in a.report_types
}

uncovered(id) if {
	some r in not_covering
	r[0] == id
}

covering[id] := a if {
	some id, a in on_flow
	not uncovered(id)
}

# --- 2. precedence ----------------------------------------------------------------

# [set aside, by]: `by` covers the report and declares precedence over `id`
# for its type. Loading refuses a circle of declarations, so some covering
# agreement always governs.
set_aside contains [id, by] if {
	some by, a in covering
	some declared in object.get(a, "precedence", [])
	input.report_type in declared.report_types
	some id in declared.over
	covering[id]
}

displaced(id) if {
	some s in set_aside
	s[0] == id
}

governing[id] := a if {
	some id, a in covering
	not displaced(id)
}

governing_ids contains id if {
	some id, _ in governing
}

# --- 3. most protective -------------------------------------------------------------

prohibition contains [id, "marking_above_limit"] if {
	some id, a in governing
	not marking_rank[input.marking] <= marking_rank[a.max_marking]
}

prohibition contains [id, "handling_code_not_covered"] if {
	some id, a in governing
	not input.handling_code in a.handling_codes
}

# H2: no onward sharing without the originator's consent, given per
# recipient in the agreement.
prohibition contains [id, "h2_without_consent"] if {
	some id, a in governing
	input.handling_code == "H2"
	not input.recipient in object.get(a.h2_consent, input.origin, [])
}

prohibition contains [id, "facet_excluded"] if {
	some id, a in governing
	some facet in input.facets
	facet in a.excluded_facets
}

field_rules contains rule if {
	some id, _ in governing
	some key in ["*", input.report_type]
	some rule in object.get(data.agreements[id].field_rules, key, [])
}

embargo_delays contains rule.after if {
	some rule in field_rules
	rule.action == "embargo"
}

not_before_s := input.observed_at_s + max(embargo_delays) if {
	count(embargo_delays) > 0
}

default not_before_s := null

# --- the decision -------------------------------------------------------------------

# What every decision explains, allowed or not: the agreements whose terms
# decided, those set aside by a declared precedence, and those on the flow
# that do not cover the report.
explanation := {
	"governing": [{"id": id, "version": governing[id].version} | some id in governing_ids],
	"set_aside": [{"id": s[0], "by": s[1]} | some s in set_aside],
	"not_covering": [sprintf("%s:%s", [r[0], r[1]]) | some r in not_covering],
}

# The first governing agreement by id authorises the delivery; its secret
# keys the pseudonyms (broker/enforcer/stages/fanout.py).
decision := object.union(explanation, {
	"allow": true,
	"reasons": [],
	"agreement": {"id": chosen.id, "version": chosen.version},
	"field_rules": field_rules,
	"not_before_s": not_before_s,
}) if {
	count(governing) > 0
	count(prohibition) == 0

	# min, not sort(...)[0]: regopy 1.5.2 leaves the indexed form undefined.
	chosen := governing[min(governing_ids)]
}

decision := object.union(explanation, {
	"allow": false,
	"reasons": ["no_agreement"],
	"agreement": null,
	"field_rules": [],
}) if {
	count(on_flow) == 0
}

decision := object.union(explanation, {
	"allow": false,
	"reasons": sort({sprintf("%s:%s", [r[0], r[1]]) | some r in not_covering}),
	"agreement": null,
	"field_rules": [],
}) if {
	count(on_flow) > 0
	count(covering) == 0
}

decision := object.union(explanation, {
	"allow": false,
	"reasons": sort({sprintf("%s:%s", [r[0], r[1]]) | some r in prohibition}),
	"agreement": null,
	"field_rules": [],
}) if {
	count(prohibition) > 0
}
