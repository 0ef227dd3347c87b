package koppeltaal

import (
	"slices"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// The Koppeltaal 1.3.x message events (SPEC.md §4.4): MessageHeader.event codes in the MessageEvents
// system. This file is their one definition; route files, the load tool, the regression suite and the
// configuration check against it.
const (
	EventCreateOrUpdatePatient                = "CreateOrUpdatePatient"
	EventCreateOrUpdatePractitioner           = "CreateOrUpdatePractitioner"
	EventCreateOrUpdateRelatedPerson          = "CreateOrUpdateRelatedPerson"
	EventCreateOrUpdateActivityDefinition     = "CreateOrUpdateActivityDefinition"
	EventCreateOrUpdateCarePlan               = "CreateOrUpdateCarePlan"
	EventUpdateCarePlanActivityStatus         = "UpdateCarePlanActivityStatus"
	EventCreateOrUpdateCarePlanActivityResult = "CreateOrUpdateCarePlanActivityResult"
	EventCreateOrUpdateUserMessage            = "CreateOrUpdateUserMessage"
)

// Events are the message event codes a server routes, in the order of SPEC.md §4.4.
var Events = []string{
	EventCreateOrUpdatePatient,
	EventCreateOrUpdatePractitioner,
	EventCreateOrUpdateRelatedPerson,
	EventCreateOrUpdateActivityDefinition,
	EventCreateOrUpdateCarePlan,
	EventUpdateCarePlanActivityStatus,
	EventCreateOrUpdateCarePlanActivityResult,
	EventCreateOrUpdateUserMessage,
}

// KnownEvent reports whether code is a Koppeltaal message event.
func KnownEvent(code string) bool { return slices.Contains(Events, code) }

// focusOf is the focal resource type per event (SPEC.md §4.4), as in the Conformance.
var focusOf = map[string]string{
	EventCreateOrUpdatePatient:                "Patient",
	EventCreateOrUpdatePractitioner:           "Practitioner",
	EventCreateOrUpdateRelatedPerson:          "RelatedPerson",
	EventCreateOrUpdateActivityDefinition:     "Other",
	EventCreateOrUpdateCarePlan:               "CarePlan",
	EventUpdateCarePlanActivityStatus:         "Other",
	EventCreateOrUpdateCarePlanActivityResult: "Other",
	EventCreateOrUpdateUserMessage:            "Other",
}

// EventNeedsPatient reports whether a message of event must name its patient in the MessageHeader#Patient
// extension: SPEC.md §4.2 exempts Practitioner and ActivityDefinition; the Python connector also sends
// CreateOrUpdatePatient without it (the focal resource is the patient).
func EventNeedsPatient(event string) bool {
	switch event {
	case EventCreateOrUpdatePractitioner, EventCreateOrUpdateActivityDefinition, EventCreateOrUpdatePatient:
		return false
	}
	return true
}

// allowedTypes are the resource types a 1.3.5 message may carry (SPEC.md §4.5, dstu1.MessageResourceTypes
// and the MessageHeader), and the BlackBoxState that the Test Game sends with its status updates
// (CLIENTS.md); Other resources count by their OtherResourceUsage code.
var allowedTypes = func() map[string]bool {
	m := map[string]bool{"MessageHeader": true, dstu1.KindBlackBoxState: true}
	for _, t := range dstu1.MessageResourceTypes {
		m[t] = true
	}
	return m
}()

// resultTypes are the resource types a CreateOrUpdateCarePlanActivityResult may carry besides those of
// allowedTypes: the Other coded CarePlanActivityResult of the TA profile and the DiagnosticReport,
// Questionnaire and Observation of TD-CP's example (SPEC.md §4.4, §17 item 16). TO p21 left the event out of
// 1.3.5, but ARCH §5.2.2 still routes it and the Python and C# connectors can send it, so it is accepted
// (decision 22) rather than refused as an unsupported resource type.
var resultTypes = map[string]bool{dstu1.KindCarePlanActivityResult: true, "DiagnosticReport": true, "Questionnaire": true, "Observation": true}

// typeAllowed reports whether a message of event may carry a resource of type t (Other resources by
// their OtherResourceUsage code).
func typeAllowed(event, t string) bool {
	return allowedTypes[t] || event == EventCreateOrUpdateCarePlanActivityResult && resultTypes[t]
}
