"""Entities shaped as the Smart Data Models `OffStreetParking` (dataModel.Parking) and
`AirQualityObserved` (dataModel.Environment) describe them, in the normalized NGSI-LD form,
without @context: each test says which @context goes with them."""

# Car parks in Singapore: (id suffix, name, longitude, latitude, total spots, free spots).
CAR_PARKS = [
    ("SG-MarinaSquare", "Marina Square car park", 103.8578, 1.2912, 860, 121),
    ("SG-SuntecCity", "Suntec City car park", 103.8590, 1.2944, 1300, 415),
    ("SG-ION-Orchard", "ION Orchard car park", 103.8319, 1.3040, 500, 8),
    ("SG-Changi-T3", "Changi Airport Terminal 3 car park", 103.9855, 1.3554, 2100, 960),
]

# The Marina Square car park; "near" queries in the tests start here.
MARINA = (103.8578, 1.2912)

# A polygon around the Marina Bay area (Marina Square and Suntec City, not Orchard or Changi).
MARINA_BAY = [[103.850, 1.285], [103.866, 1.285], [103.866, 1.300], [103.850, 1.300], [103.850, 1.285]]


def parking_id(suffix: str) -> str:
    return f"urn:ngsi-ld:OffStreetParking:{suffix}"


def off_street_parking(suffix, name, lon, lat, total, free, observed="2024-05-06T08:00:00Z"):
    return {
        "id": parking_id(suffix),
        "type": "OffStreetParking",
        "name": {"type": "Property", "value": name},
        "category": {"type": "Property", "value": ["public", "feeCharged", "underground"]},
        "totalSpotNumber": {"type": "Property", "value": total},
        "availableSpotNumber": {"type": "Property", "value": free, "observedAt": observed},
        "status": {"type": "Property", "value": "open"},
        "address": {
            "type": "Property",
            "value": {"addressCountry": "SG", "addressLocality": "Singapore"},
        },
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }


def car_parks():
    return [off_street_parking(*row) for row in CAR_PARKS]


def air_quality_observed(suffix, lon, lat, no2, pm10, level, observed="2024-05-06T08:00:00Z"):
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:{suffix}",
        "type": "AirQualityObserved",
        "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": observed}},
        "no2": {"type": "Property", "value": no2, "unitCode": "GQ", "observedAt": observed},
        "pm10": {"type": "Property", "value": pm10, "unitCode": "GQ", "observedAt": observed},
        "airQualityLevel": {"type": "Property", "value": level},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
    }


def air_quality_stations():
    return [
        air_quality_observed("SG-Clementi", 103.7649, 1.3162, 22.0, 31.0, "good"),
        air_quality_observed("SG-Marina", 103.8545, 1.2897, 48.5, 55.0, "moderate"),
    ]
