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
# Default deny: `decision.allow` is true only when at least one agreement
# covers the pair and none of its checks refuse. An unknown marking or a
# missing field makes a check fail, never pass.
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
covering[id] := a if {
	some id, a in data.agreements
	input.origin in a.senders
	input.recipient in a.receivers
	input.origin != input.recipient
}

refusal contains [id, "agreement_not_yet_valid"] if {
	some id, a in covering
	input.now_s < a.valid_from_s
}

refusal contains [id, "agreement_expired"] if {
	some id, a in covering
	a.valid_until_s != null
	input.now_s >= a.valid_until_s
}

refusal contains [id, "report_type_not_covered"] if {
	some id, a in covering
	not input.report_type in a.report_types
}

refusal contains [id, "marking_above_limit"] if {
	some id, a in covering
	not marking_rank[input.marking] <= marking_rank[a.max_marking]
}

refusal contains [id, "handling_code_not_covered"] if {
	some id, a in covering
	not input.handling_code in a.handling_codes
}

# H2: no onward sharing without the originator's consent, given per
# recipient in the agreement.
refusal contains [id, "h2_without_consent"] if {
	some id, a in covering
	input.handling_code == "H2"
	not input.recipient in object.get(a.h2_consent, input.origin, [])
}

refusal contains [id, "facet_excluded"] if {
	some id, a in covering
	some facet in input.facets
	facet in a.excluded_facets
}

refused(id) if {
	some r in refusal
	r[0] == id
}

allowing contains id if {
	some id, _ in covering
	not refused(id)
}

# When several agreements allow, the first by id authorises the delivery
# and every allowing agreement's field rules apply: no agreement's
# protection can be bypassed through another.
field_rules contains rule if {
	some id in allowing
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

decision := {
	"allow": true,
	"reasons": [],
	"agreement": {"id": chosen.id, "version": chosen.version},
	"field_rules": field_rules,
	"not_before_s": not_before_s,
} if {
	count(allowing) > 0
	# min, not sort(...)[0]: regopy 1.5.2 leaves the indexed form undefined.
	chosen := data.agreements[min(allowing)]
}

decision := {
	"allow": false,
	"reasons": ["no_agreement"],
	"agreement": null,
	"field_rules": [],
} if {
	count(covering) == 0
}

decision := {
	"allow": false,
	"reasons": sort({sprintf("%s:%s", [r[0], r[1]]) | some r in refusal}),
	"agreement": null,
	"field_rules": [],
} if {
	count(covering) > 0
	count(allowing) == 0
}
