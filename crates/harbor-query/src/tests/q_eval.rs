//! `q` evaluator tables: one rich Entity, many queries, the expected outcome of each.

use serde_json::json;

use super::{entity, ex};
use crate::parse_q;

fn fixture() -> harbor_model::Entity {
    entity(json!({
        "id": "urn:ngsi-ld:Building:1",
        "type": "Building",
        "name": {
            "type": "Property", "value": "Eiffel Tower", "observedAt": "2020-01-01T10:00:00Z",
            "floors": {"type": "Property", "value": 3, "unitCode": "C62"}
        },
        "speed": [
            {"type": "Property", "value": 80},
            {"type": "Property", "value": 120, "datasetId": "urn:ds:radar"}
        ],
        "almostFull": {"type": "Property", "value": false},
        "tags": {"type": "Property", "value": ["a", "b", "c"]},
        "address": {"type": "Property", "value": {"city": "Berlin", "geo": {"zip": "10115"}}},
        "color": {"type": "LanguageProperty", "languageMap": {"en": "red", "fr": "rouge"}},
        "category": {"type": "VocabProperty", "vocab": "ex:commercial"},
        "locatedIn": {"type": "Relationship", "object": "urn:ngsi-ld:City:Pisa"},
        "owners": {"type": "ListRelationship", "objectList": ["urn:p:1", "urn:p:2"]},
        "scores": {"type": "ListProperty", "valueList": [1, 5, 9]},
        "config": {"type": "JsonProperty", "json": {"mode": "eco", "level": 2}},
        "openedAt": {"type": "Property", "value": "2018-06-01T08:00:00Z"},
        "openDate": {"type": "Property", "value": "2018-06-01"},
        "opensAt": {"type": "Property", "value": "09:30:00"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2.29, 48.85]}}
    }))
}

#[test]
fn terms_match_as_the_spec_says() {
    let e = fixture();
    let cases = [
        // equality, lists, negation
        ("name==\"Eiffel Tower\"", true),
        ("name==\"Pisa Tower\"", false),
        ("name!=\"Pisa Tower\"", true),
        ("name!=\"Eiffel Tower\",\"Big Ben\"", false),
        ("name==\"Pisa Tower\",\"Eiffel Tower\"", true),
        ("name==3", false),
        ("speed==\"80\"", false),
        ("almostFull==false", true),
        ("almostFull==\"false\"", false),
        ("almostFull!=true", true),
        // patterns
        ("name~=\"^Eif\"", true),
        ("name~=^Eif", true),
        ("name~=\"(?i)^eiffel\"", true),
        ("name!~=\"^Eif\"", false),
        ("name!~=\"^Pisa\"", true),
        ("speed~=\"8\"", false),
        // numbers, instances (any datasetId), ranges
        ("speed>100", true),
        ("speed<50", false),
        ("speed==80", true),
        ("speed==120", true),
        ("speed>=80;speed<=80", true),
        ("speed==80..100", true),
        ("speed==90..100", false),
        ("speed!=80..120", false),
        ("speed!=200..300", true),
        ("speed.datasetId==\"urn:ds:radar\"", true),
        // arrays: any element
        ("tags==\"b\"", true),
        ("tags!=\"b\"", false),
        ("tags==\"z\"", false),
        ("tags!=\"z\"", true),
        ("scores>8", true),
        ("scores==5", true),
        ("scores<1", false),
        // compound values
        ("address[city]==\"Berlin\"", true),
        ("address[postcode]==\"Berlin\"", false),
        ("address[city]", true),
        ("address[postcode]", false),
        ("!address[postcode]", true),
        ("address[geo.zip]==\"10115\"", true),
        ("address[geo][zip]==\"10115\"", true),
        ("config[mode]==\"eco\"", true),
        ("config[level]>=2", true),
        // language maps
        ("color[en]==\"red\"", true),
        ("color[en]==\"rouge\"", false),
        ("color[*]==\"rouge\"", true),
        ("color[*]!=\"red\"", false),
        ("color==\"rouge\"", true),
        ("color[de]", false),
        // vocab: compared with the expanded IRI
        ("category==\"ex:commercial\"", true),
        ("category==commercial", false),
        // relationships: object, only == and !=
        ("locatedIn==urn:ngsi-ld:City:Pisa", true),
        ("locatedIn==\"urn:ngsi-ld:City:Pisa\"", true),
        ("locatedIn==urn:ngsi-ld:City:Paris", false),
        ("locatedIn!=urn:ngsi-ld:City:Paris", true),
        (
            "locatedIn==urn:ngsi-ld:City:Pisa|locatedIn==urn:ngsi-ld:City:Paris",
            true,
        ),
        ("locatedIn>\"urn:a\"", false),
        ("locatedIn~=\"Pisa\"", false),
        ("owners==urn:p:2", true),
        ("owners>=\"urn:a\"", false),
        // temporal values compare chronologically
        ("openedAt>2018-01-01T00:00:00Z", true),
        ("openedAt==\"2018-06-01T08:00:00.000Z\"", true),
        ("openedAt==\"2018-06-01T10:00:00+02:00\"", true),
        ("openedAt<\"2018-06-01T09:00:00+02:00\"", false),
        ("openedAt==2018-01-01T00:00:00Z..2018-12-31T00:00:00Z", true),
        ("openDate>2018-05-31", true),
        ("openDate==2018-06-01", true),
        ("opensAt<10:00:00", true),
        ("opensAt>10:00:00", false),
        // sub-attributes and meta members
        ("name.observedAt>2019-12-31T00:00:00Z", true),
        ("name.observedAt<2019-12-31T00:00:00Z", false),
        ("speed.observedAt", false),
        ("name.floors==3", true),
        ("name.floors.unitCode==\"C62\"", true),
        ("name.floors>5", false),
        ("name.floors", true),
        ("name.nothing", false),
        ("!name.nothing", true),
        ("name.createdAt<2100-01-01T00:00:00Z", true),
        ("name.modifiedAt==\"2021-01-01T00:00:00Z\"", true),
        // existence
        ("name", true),
        ("!name", false),
        ("nothing", false),
        ("!nothing", true),
        ("nothing!=1", false),
        ("location", true),
        // entity members
        ("id==urn:ngsi-ld:Building:1", true),
        ("id~=\"Building\"", true),
        ("type==Building", true),
        ("type==Vehicle", false),
        ("createdAt<\"2021-06-01T00:00:00Z\"", true),
        ("modifiedAt>\"2021-06-01T00:00:00Z\"", true),
        // logic and precedence: ';' binds tighter than '|'
        ("speed>100;almostFull==false", true),
        ("speed>200|almostFull==false", true),
        ("(speed>200|almostFull==true);name", false),
        ("almostFull==true;speed==80|name==\"Eiffel Tower\"", true),
        ("name==\"x\"|almostFull==false;speed==999", false),
        (
            "(name==\"x\"|almostFull==false);(speed==999|speed==80)",
            true,
        ),
        // linked entities need a resolver
        ("locatedIn{name}==\"Pisa\"", false),
    ];
    for (input, want) in cases {
        let q = parse_q(input, &ex).unwrap_or_else(|err| panic!("{input}: {err}"));
        assert_eq!(q.matches(&e), want, "{input}");
    }
}

#[test]
fn linked_entity_terms_follow_relationships() {
    let e = fixture();
    let pisa = entity(json!({
        "id": "urn:ngsi-ld:City:Pisa", "type": "City",
        "name": {"type": "Property", "value": "Pisa"},
        "mayor": {"type": "Relationship", "object": "urn:p:1"}
    }));
    let person = entity(json!({
        "id": "urn:p:1", "type": "Person", "name": {"type": "Property", "value": "Ann"}
    }));
    let resolve = |id: &str| match id {
        "urn:ngsi-ld:City:Pisa" => Some(pisa.clone()),
        "urn:p:1" => Some(person.clone()),
        _ => None,
    };
    let cases = [
        ("locatedIn{name}==\"Pisa\"", true),
        ("locatedIn{name}==\"Rome\"", false),
        ("locatedIn{City:name}==\"Pisa\"", true),
        ("locatedIn{Vehicle:name}==\"Pisa\"", false),
        ("locatedIn{name}", true),
        ("!locatedIn{name}", false),
        ("locatedIn{mayor{name}}==\"Ann\"", true),
        ("owners{name}==\"Ann\"", true),
        ("owners{name}==\"Bob\"", false),
        ("name{name}", false),
    ];
    for (input, want) in cases {
        let q = parse_q(input, &ex).unwrap();
        assert_eq!(q.matches_linked(&e, &resolve), want, "{input}");
    }
}

#[test]
fn expand_values_makes_short_vocab_terms_match() {
    let e = fixture();
    let mut q = parse_q("category==commercial", &ex).unwrap();
    assert!(!q.matches(&e));
    q.expand_values(&[ex("category")], &ex);
    assert!(q.matches(&e));
}
