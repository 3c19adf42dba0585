"""Hand-written inputs of the packaged carbon tables: cloud region locations and neighbouring grids.

Read by scripts/build_carbon_tables.py, which checks that every zone named here exists in the
generated tables. Zones are ISO 3166-1 alpha-2 country codes ("DE"), ISO 3166-2 subdivisions for
US states, Canadian provinces and Chinese provinces ("US-VA", "CA-QC", "CN-BJ"), and the
Electricity Maps names of the Nordic bidding zones ("SE-SE3", "NO-NO1").

Sources for the region locations: each provider's public list of regions and their cities
(AWS "Regions and Availability Zones", Azure "Azure geographies", Google Cloud "Cloud locations"),
as published in 2025. A region is mapped to the grid of the state, province or bidding zone its
city lies in, or to the country where no finer table exists. The grid operator noted beside a US
region is the balancing authority of that area (for example PJM for northern Virginia).
"""

from __future__ import annotations

from typing import Dict, Tuple

# region -> (location, zone, grid note)
AWS_REGIONS: Dict[str, Tuple[str, str, str]] = {
    "us-east-1": ("N. Virginia, US", "US-VA", "PJM"),
    "us-east-2": ("Ohio, US", "US-OH", "PJM"),
    "us-west-1": ("N. California, US", "US-CA", "CAISO"),
    "us-west-2": ("Oregon, US", "US-OR", "BPA"),
    "us-gov-east-1": ("Ohio, US", "US-OH", "PJM"),
    "us-gov-west-1": ("Oregon, US", "US-OR", "BPA"),
    "ca-central-1": ("Montreal, Canada", "CA-QC", "Hydro-Quebec"),
    "ca-west-1": ("Calgary, Canada", "CA-AB", "AESO"),
    "mx-central-1": ("Queretaro, Mexico", "MX", ""),
    "sa-east-1": ("Sao Paulo, Brazil", "BR", ""),
    "eu-west-1": ("Dublin, Ireland", "IE", ""),
    "eu-west-2": ("London, UK", "GB", ""),
    "eu-west-3": ("Paris, France", "FR", ""),
    "eu-central-1": ("Frankfurt, Germany", "DE", ""),
    "eu-central-2": ("Zurich, Switzerland", "CH", ""),
    "eu-north-1": ("Stockholm, Sweden", "SE-SE3", "bidding zone SE3"),
    "eu-south-1": ("Milan, Italy", "IT", ""),
    "eu-south-2": ("Aragon, Spain", "ES", ""),
    "il-central-1": ("Tel Aviv, Israel", "IL", ""),
    "me-south-1": ("Bahrain", "BH", ""),
    "me-central-1": ("UAE", "AE", ""),
    "af-south-1": ("Cape Town, South Africa", "ZA", ""),
    "ap-east-1": ("Hong Kong", "HK", ""),
    "ap-east-2": ("Taipei, Taiwan", "TW", ""),
    "ap-south-1": ("Mumbai, India", "IN", ""),
    "ap-south-2": ("Hyderabad, India", "IN", ""),
    "ap-northeast-1": ("Tokyo, Japan", "JP", ""),
    "ap-northeast-2": ("Seoul, South Korea", "KR", ""),
    "ap-northeast-3": ("Osaka, Japan", "JP", ""),
    "ap-southeast-1": ("Singapore", "SG", ""),
    "ap-southeast-2": ("Sydney, Australia", "AU", ""),
    "ap-southeast-3": ("Jakarta, Indonesia", "ID", ""),
    "ap-southeast-4": ("Melbourne, Australia", "AU", ""),
    "ap-southeast-5": ("Malaysia", "MY", ""),
    "ap-southeast-7": ("Thailand", "TH", ""),
    "cn-north-1": ("Beijing, China", "CN-BJ", ""),
    "cn-northwest-1": ("Ningxia, China", "CN-NX", ""),
}

AZURE_REGIONS: Dict[str, Tuple[str, str, str]] = {
    "eastus": ("Virginia, US", "US-VA", "PJM"),
    "eastus2": ("Virginia, US", "US-VA", "PJM"),
    "centralus": ("Iowa, US", "US-IA", "MISO"),
    "northcentralus": ("Illinois, US", "US-IL", "PJM/MISO"),
    "southcentralus": ("Texas, US", "US-TX", "ERCOT"),
    "westcentralus": ("Wyoming, US", "US-WY", "WACM"),
    "westus": ("California, US", "US-CA", "CAISO"),
    "westus2": ("Washington, US", "US-WA", ""),
    "westus3": ("Arizona, US", "US-AZ", ""),
    "usgovvirginia": ("Virginia, US", "US-VA", "PJM"),
    "usgovarizona": ("Arizona, US", "US-AZ", ""),
    "usgovtexas": ("Texas, US", "US-TX", "ERCOT"),
    "canadacentral": ("Toronto, Canada", "CA-ON", "IESO"),
    "canadaeast": ("Quebec City, Canada", "CA-QC", "Hydro-Quebec"),
    "mexicocentral": ("Queretaro, Mexico", "MX", ""),
    "brazilsouth": ("Sao Paulo, Brazil", "BR", ""),
    "brazilsoutheast": ("Rio de Janeiro, Brazil", "BR", ""),
    "northeurope": ("Dublin, Ireland", "IE", ""),
    "westeurope": ("Netherlands", "NL", ""),
    "uksouth": ("London, UK", "GB", ""),
    "ukwest": ("Cardiff, UK", "GB", ""),
    "francecentral": ("Paris, France", "FR", ""),
    "francesouth": ("Marseille, France", "FR", ""),
    "germanywestcentral": ("Frankfurt, Germany", "DE", ""),
    "germanynorth": ("Berlin, Germany", "DE", ""),
    "switzerlandnorth": ("Zurich, Switzerland", "CH", ""),
    "switzerlandwest": ("Geneva, Switzerland", "CH", ""),
    "norwayeast": ("Oslo, Norway", "NO-NO1", "bidding zone NO1"),
    "norwaywest": ("Stavanger, Norway", "NO-NO2", "bidding zone NO2"),
    "swedencentral": ("Gavle, Sweden", "SE-SE3", "bidding zone SE3"),
    "polandcentral": ("Warsaw, Poland", "PL", ""),
    "italynorth": ("Milan, Italy", "IT", ""),
    "spaincentral": ("Madrid, Spain", "ES", ""),
    "israelcentral": ("Israel", "IL", ""),
    "qatarcentral": ("Doha, Qatar", "QA", ""),
    "uaenorth": ("Dubai, UAE", "AE", ""),
    "uaecentral": ("Abu Dhabi, UAE", "AE", ""),
    "southafricanorth": ("Johannesburg, South Africa", "ZA", ""),
    "southafricawest": ("Cape Town, South Africa", "ZA", ""),
    "centralindia": ("Pune, India", "IN", ""),
    "southindia": ("Chennai, India", "IN", ""),
    "westindia": ("Mumbai, India", "IN", ""),
    "jioindiawest": ("Jamnagar, India", "IN", ""),
    "jioindiacentral": ("Nagpur, India", "IN", ""),
    "eastasia": ("Hong Kong", "HK", ""),
    "southeastasia": ("Singapore", "SG", ""),
    "japaneast": ("Tokyo, Japan", "JP", ""),
    "japanwest": ("Osaka, Japan", "JP", ""),
    "koreacentral": ("Seoul, South Korea", "KR", ""),
    "koreasouth": ("Busan, South Korea", "KR", ""),
    "australiaeast": ("New South Wales, Australia", "AU", ""),
    "australiasoutheast": ("Victoria, Australia", "AU", ""),
    "australiacentral": ("Canberra, Australia", "AU", ""),
    "australiacentral2": ("Canberra, Australia", "AU", ""),
    "indonesiacentral": ("Jakarta, Indonesia", "ID", ""),
    "malaysiawest": ("Kuala Lumpur, Malaysia", "MY", ""),
    "newzealandnorth": ("Auckland, New Zealand", "NZ", ""),
    "chinaeast": ("Shanghai, China", "CN-SH", ""),
    "chinaeast2": ("Shanghai, China", "CN-SH", ""),
    "chinanorth": ("Beijing, China", "CN-BJ", ""),
    "chinanorth2": ("Beijing, China", "CN-BJ", ""),
    "chinanorth3": ("Hebei, China", "CN-HE", ""),
}

# GCP regions and their grid zones. Google publishes a grid intensity for each region (used when
# the pinned upstream has it); the zone is still recorded so that its neighbours and the country
# are known.
GCP_REGIONS: Dict[str, Tuple[str, str, str]] = {
    "africa-south1": ("Johannesburg, South Africa", "ZA", ""),
    "asia-east1": ("Changhua County, Taiwan", "TW", ""),
    "asia-east2": ("Hong Kong", "HK", ""),
    "asia-northeast1": ("Tokyo, Japan", "JP", ""),
    "asia-northeast2": ("Osaka, Japan", "JP", ""),
    "asia-northeast3": ("Seoul, South Korea", "KR", ""),
    "asia-south1": ("Mumbai, India", "IN", ""),
    "asia-south2": ("Delhi, India", "IN", ""),
    "asia-southeast1": ("Jurong West, Singapore", "SG", ""),
    "asia-southeast2": ("Jakarta, Indonesia", "ID", ""),
    "asia-southeast3": ("Bangkok, Thailand", "TH", ""),
    "australia-southeast1": ("Sydney, Australia", "AU", ""),
    "australia-southeast2": ("Melbourne, Australia", "AU", ""),
    "europe-central2": ("Warsaw, Poland", "PL", ""),
    "europe-north1": ("Hamina, Finland", "FI", ""),
    "europe-north2": ("Stockholm, Sweden", "SE-SE3", "bidding zone SE3"),
    "europe-southwest1": ("Madrid, Spain", "ES", ""),
    "europe-west1": ("St. Ghislain, Belgium", "BE", ""),
    "europe-west2": ("London, UK", "GB", ""),
    "europe-west3": ("Frankfurt, Germany", "DE", ""),
    "europe-west4": ("Eemshaven, Netherlands", "NL", ""),
    "europe-west6": ("Zurich, Switzerland", "CH", ""),
    "europe-west8": ("Milan, Italy", "IT", ""),
    "europe-west9": ("Paris, France", "FR", ""),
    "europe-west10": ("Berlin, Germany", "DE", ""),
    "europe-west12": ("Turin, Italy", "IT", ""),
    "me-central1": ("Doha, Qatar", "QA", ""),
    "me-central2": ("Dammam, Saudi Arabia", "SA", ""),
    "me-west1": ("Tel Aviv, Israel", "IL", ""),
    "northamerica-northeast1": ("Montreal, Canada", "CA-QC", "Hydro-Quebec"),
    "northamerica-northeast2": ("Toronto, Canada", "CA-ON", "IESO"),
    "northamerica-south1": ("Queretaro, Mexico", "MX", ""),
    "southamerica-east1": ("Sao Paulo, Brazil", "BR", ""),
    "southamerica-west1": ("Santiago, Chile", "CL", ""),
    "us-central1": ("Council Bluffs, Iowa, US", "US-IA", "MISO"),
    "us-east1": ("Moncks Corner, South Carolina, US", "US-SC", "SCEG/Santee Cooper"),
    "us-east4": ("Ashburn, N. Virginia, US", "US-VA", "PJM"),
    "us-east5": ("Columbus, Ohio, US", "US-OH", "PJM"),
    "us-south1": ("Dallas, Texas, US", "US-TX", "ERCOT"),
    "us-west1": ("The Dalles, Oregon, US", "US-OR", "BPA"),
    "us-west2": ("Los Angeles, California, US", "US-CA", "LADWP"),
    "us-west3": ("Salt Lake City, Utah, US", "US-UT", "PACE"),
    "us-west4": ("Las Vegas, Nevada, US", "US-NV", "NEVP"),
}

# Neighbouring grids: undirected pairs of zones that share a land border or a direct
# interconnector (HVDC links named in ENTSO-E's grid map for Europe). Adjacency says nothing about
# transfer capacity; it only lists where a workload could plausibly move nearby.
NEIGHBOUR_PAIRS_EUROPE = """
PT/ES ES/FR ES/MA FR/BE FR/LU FR/DE FR/CH FR/IT FR/GB BE/NL BE/LU BE/DE BE/GB NL/DE NL/GB
NL/NO NL/DK LU/DE DE/DK DE/PL DE/CZ DE/AT DE/CH DE/SE DE/NO CH/AT CH/IT AT/IT AT/SI
AT/HU AT/CZ AT/SK IT/SI IT/GR IT/ME IT/MT CZ/PL CZ/SK SK/PL SK/HU SK/UA PL/LT PL/SE PL/UA HU/SI
HU/HR HU/RS HU/RO HU/UA SI/HR HR/BA HR/RS BA/RS BA/ME RS/ME RS/MK RS/BG RS/RO ME/AL AL/MK AL/GR
MK/GR MK/BG BG/GR BG/RO BG/TR GR/TR RO/MD RO/UA MD/UA LT/LV LT/SE LV/EE EE/FI FI/SE FI/NO SE/NO
SE/DK NO/DK NO/GB DK/GB IE/GB
SE-SE1/SE-SE2 SE-SE2/SE-SE3 SE-SE3/SE-SE4 SE-SE1/FI SE-SE3/FI SE-SE1/NO-NO4 SE-SE2/NO-NO3
SE-SE2/NO-NO4 SE-SE3/NO-NO1 SE-SE3/DK SE-SE4/DK SE-SE4/DE SE-SE4/PL SE-SE4/LT
NO-NO1/NO-NO2 NO-NO1/NO-NO3 NO-NO1/NO-NO5 NO-NO2/NO-NO5 NO-NO3/NO-NO4 NO-NO3/NO-NO5
NO-NO2/DK NO-NO2/NL NO-NO2/DE NO-NO2/GB NO-NO4/FI
"""

NEIGHBOUR_PAIRS_AMERICAS = """
US/CA US/MX MX/GT MX/BZ GT/SV GT/HN SV/HN HN/NI NI/CR CR/PA PA/CO CO/VE CO/EC EC/PE PE/CL PE/BO
CL/AR AR/BO AR/PY AR/UY AR/BR BR/UY BR/PY BR/VE BR/BO
"""

NEIGHBOUR_PAIRS_ASIA_AFRICA = """
CN/HK CN/MO CN/MN CN/RU CN/VN CN/LA CN/MM CN/KZ CN/KG RU/KZ RU/MN RU/FI RU/GE RU/AZ RU/BY
IN/NP IN/BT IN/BD IN/MM TH/LA TH/MY TH/KH VN/LA VN/KH MY/SG
SA/BH SA/QA SA/AE SA/KW SA/OM SA/JO AE/OM JO/EG EG/LY
ZA/BW ZA/NA ZA/MZ ZA/ZW ZA/LS ZA/SZ MZ/ZW ZW/ZM ZM/BW
"""

# US state borders (land borders only; Four Corners touches count as none).
NEIGHBOUR_PAIRS_US_STATES = """
AL/FL AL/GA AL/MS AL/TN AZ/CA AZ/NV AZ/NM AZ/UT AR/LA AR/MS AR/MO AR/OK AR/TN AR/TX CA/NV CA/OR
CO/KS CO/NE CO/NM CO/OK CO/UT CO/WY CT/MA CT/NY CT/RI DE/MD DE/NJ DE/PA DC/MD DC/VA FL/GA GA/NC
GA/SC GA/TN ID/MT ID/NV ID/OR ID/UT ID/WA ID/WY IL/IN IL/IA IL/KY IL/MO IL/WI IN/KY IN/MI IN/OH
IA/MN IA/MO IA/NE IA/SD IA/WI KS/MO KS/NE KS/OK KY/MO KY/OH KY/TN KY/VA KY/WV LA/MS LA/TX ME/NH
MD/PA MD/VA MD/WV MA/NH MA/NY MA/RI MA/VT MI/OH MI/WI MN/ND MN/SD MN/WI MS/TN MO/NE MO/OK MO/TN
MT/ND MT/SD MT/WY NE/SD NE/WY NV/OR NV/UT NH/VT NJ/NY NJ/PA NM/OK NM/TX NY/PA NY/VT NC/SC NC/TN
NC/VA ND/SD OH/PA OH/WV OK/TX OR/WA PA/WV SD/WY TN/VA UT/WY VA/WV
"""

# Canadian provincial borders and subsea links, and the cross-border interties to US states.
NEIGHBOUR_PAIRS_CANADA = """
CA-BC/CA-AB CA-BC/CA-YT CA-BC/CA-NT CA-AB/CA-SK CA-AB/CA-NT CA-SK/CA-MB CA-SK/CA-NT CA-MB/CA-ON
CA-MB/CA-NU CA-ON/CA-QC CA-QC/CA-NB CA-QC/CA-NL CA-NB/CA-NS CA-NB/CA-PE CA-NS/CA-NL CA-YT/CA-NT
CA-NT/CA-NU
CA-BC/US-WA CA-AB/US-MT CA-SK/US-MT CA-SK/US-ND CA-MB/US-ND CA-MB/US-MN CA-ON/US-MN CA-ON/US-MI
CA-ON/US-NY CA-QC/US-NY CA-QC/US-VT CA-QC/US-NH CA-QC/US-ME CA-NB/US-ME
"""

CANADA_PROVINCE_CODES: Dict[str, str] = {
    "alberta": "AB",
    "british columbia": "BC",
    "manitoba": "MB",
    "new brunswick": "NB",
    "newfoundland and labrador": "NL",
    "northwest territories": "NT",
    "nova scotia": "NS",
    "nunavut": "NU",
    "ontario": "ON",
    "prince edward island": "PE",
    "quebec": "QC",
    "saskatchewan": "SK",
    "yukon": "YT",
}

# Spellings a user or a geolocation service may give for a region, beyond its code and name.
EXTRA_REGION_ALIASES: Dict[str, Tuple[str, ...]] = {
    "CA-QC": ("québec",),
    "CA-YT": ("yukon territory",),
    "US-DC": ("washington dc", "washington d.c."),
}
