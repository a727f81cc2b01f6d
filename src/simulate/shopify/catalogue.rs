//! The simulated store's products, shoppers and places. Small hand-written lists; the phone
//! numbers are in ranges reserved for fiction (US/CA 555-01xx, UK 020 7946 0xxx).

/// A product the simulated store sells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    /// The store SKU; empty for a custom item. SKUs starting with "NEW-" are recent additions
    /// that an ERP has not been told about.
    pub sku: &'static str,
    /// Product title.
    pub title: &'static str,
    /// Variant title, if the product has variants.
    pub variant: Option<&'static str>,
    /// Unit price as Shopify writes it.
    pub price: &'static str,
    /// Whether it is shipped (false for digital goods).
    pub requires_shipping: bool,
}

const fn item(
    sku: &'static str,
    title: &'static str,
    variant: Option<&'static str>,
    price: &'static str,
) -> Product {
    Product {
        sku,
        title,
        variant,
        price,
        requires_shipping: true,
    }
}

const fn digital(sku: &'static str, title: &'static str, price: &'static str) -> Product {
    Product {
        sku,
        title,
        variant: None,
        price,
        requires_shipping: false,
    }
}

/// Everything the simulated store sells.
pub const CATALOGUE: &[Product] = &[
    item(
        "TEE-BLK-S",
        "Organic Cotton Tee",
        Some("Black / S"),
        "25.00",
    ),
    item(
        "TEE-BLK-M",
        "Organic Cotton Tee",
        Some("Black / M"),
        "25.00",
    ),
    item(
        "TEE-WHT-L",
        "Organic Cotton Tee",
        Some("White / L"),
        "25.00",
    ),
    item(
        "HOOD-NVY-M",
        "Heavyweight Hoodie",
        Some("Navy / M"),
        "64.00",
    ),
    item(
        "HOOD-GRY-XL",
        "Heavyweight Hoodie",
        Some("Grey / XL"),
        "64.00",
    ),
    item("CAP-OLV", "Six-Panel Cap", Some("Olive"), "22.50"),
    item("SOCK-3PK", "Merino Socks (3 pairs)", None, "19.99"),
    item("MUG-12OZ", "Stoneware Mug 12 oz", None, "16.00"),
    item("BTL-750", "Insulated Bottle 750 ml", None, "34.95"),
    item("TOTE-NAT", "Canvas Tote", Some("Natural"), "18.50"),
    item("NB-A5-DOT", "A5 Dotted Notebook", None, "12.75"),
    item("PEN-GEL-3", "Gel Pens (pack of 3)", None, "7.49"),
    item(
        "NEW-JKT-RAIN-M",
        "Packable Rain Jacket",
        Some("M"),
        "129.00",
    ),
    item("NEW-BEANIE-RED", "Ribbed Beanie", Some("Red"), "28.00"),
    item("NEW-TOTE-XL", "Weekender Tote XL", None, "49.00"),
    item("", "Gift wrapping", None, "4.00"),
    digital("EGIFT-25", "E-Gift Card $25", "25.00"),
    digital("EBOOK-CARE", "Garment Care Guide (e-book)", "9.00"),
];

/// A place orders ship to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// City.
    pub city: &'static str,
    /// Province / state name.
    pub province: &'static str,
    /// Province / state code.
    pub province_code: &'static str,
    /// Country name.
    pub country: &'static str,
    /// ISO country code.
    pub country_code: &'static str,
    /// A postal code there.
    pub zip: &'static str,
    /// Sales tax / VAT rate, in percent.
    pub tax_percent: u32,
    /// The tax's name on the receipt.
    pub tax_title: &'static str,
    /// How people there write a local number; `#` is replaced by a digit.
    pub phone_pattern: &'static str,
}

const fn place(
    city: &'static str,
    (province, province_code): (&'static str, &'static str),
    (country, country_code): (&'static str, &'static str),
    zip: &'static str,
    (tax_percent, tax_title): (u32, &'static str),
    phone_pattern: &'static str,
) -> Place {
    Place {
        city,
        province,
        province_code,
        country,
        country_code,
        zip,
        tax_percent,
        tax_title,
        phone_pattern,
    }
}

const US: (&str, &str) = ("United States", "US");

/// Where the simulated shoppers live: mostly the US, some Canada, the UK and Germany.
pub const PLACES: &[Place] = &[
    place(
        "San Francisco",
        ("California", "CA"),
        US,
        "94105",
        (8, "CA State Tax"),
        "(415) 555-01##",
    ),
    place(
        "Los Angeles",
        ("California", "CA"),
        US,
        "90012",
        (8, "CA State Tax"),
        "213-555-01##",
    ),
    place(
        "New York",
        ("New York", "NY"),
        US,
        "10001",
        (8, "NY State Tax"),
        "212.555.01##",
    ),
    place(
        "Brooklyn",
        ("New York", "NY"),
        US,
        "11201",
        (8, "NY State Tax"),
        "(718) 555-01##",
    ),
    place(
        "Austin",
        ("Texas", "TX"),
        US,
        "78701",
        (6, "TX State Tax"),
        "512 555 01##",
    ),
    place(
        "Chicago",
        ("Illinois", "IL"),
        US,
        "60601",
        (6, "IL State Tax"),
        "+1 312-555-01##",
    ),
    place(
        "Seattle",
        ("Washington", "WA"),
        US,
        "98101",
        (6, "WA State Tax"),
        "(206) 555-01##",
    ),
    place(
        "Portland",
        ("Oregon", "OR"),
        US,
        "97205",
        (0, "No Tax"),
        "503-555-01##",
    ),
    place(
        "Denver",
        ("Colorado", "CO"),
        US,
        "80202",
        (3, "CO State Tax"),
        "1-303-555-01##",
    ),
    place(
        "Toronto",
        ("Ontario", "ON"),
        ("Canada", "CA"),
        "M5V 2T6",
        (13, "HST"),
        "(416) 555-01##",
    ),
    place(
        "Vancouver",
        ("British Columbia", "BC"),
        ("Canada", "CA"),
        "V6B 1A1",
        (12, "GST/PST"),
        "604-555-01##",
    ),
    place(
        "London",
        ("England", "ENG"),
        ("United Kingdom", "GB"),
        "EC1A 1BB",
        (20, "VAT"),
        "020 7946 0###",
    ),
    place(
        "Berlin",
        ("Berlin", "BE"),
        ("Germany", "DE"),
        "10115",
        (19, "MwSt"),
        "030 901820",
    ),
];

/// Given names (with the ASCII spelling used in their email address).
pub const FIRST_NAMES: &[(&str, &str)] = &[
    ("Ana", "ana"),
    ("José", "jose"),
    ("Mei", "mei"),
    ("Olivia", "olivia"),
    ("Liam", "liam"),
    ("Chloé", "chloe"),
    ("Noah", "noah"),
    ("Priya", "priya"),
    ("Kwame", "kwame"),
    ("Sofia", "sofia"),
    ("Mateo", "mateo"),
    ("Hannah", "hannah"),
    ("Yuki", "yuki"),
    ("Fatima", "fatima"),
    ("Lukas", "lukas"),
    ("Grace", "grace"),
    ("Omar", "omar"),
    ("Isabella", "isabella"),
    ("Ethan", "ethan"),
    ("Zoë", "zoe"),
];

/// Family names (with the ASCII spelling used in their email address).
pub const LAST_NAMES: &[(&str, &str)] = &[
    ("Díaz", "diaz"),
    ("Smith", "smith"),
    ("Chen", "chen"),
    ("Johnson", "johnson"),
    ("Müller", "mueller"),
    ("Okafor", "okafor"),
    ("Garcia", "garcia"),
    ("Nguyen", "nguyen"),
    ("Patel", "patel"),
    ("O'Brien", "obrien"),
    ("Kowalski", "kowalski"),
    ("Rossi", "rossi"),
    ("Tanaka", "tanaka"),
    ("Haddad", "haddad"),
    ("Dubois", "dubois"),
    ("Andersen", "andersen"),
    ("Silva", "silva"),
    ("Cohen", "cohen"),
    ("Brown", "brown"),
    ("Lee", "lee"),
];

/// Email domains reserved for examples (RFC 2606), so nothing simulated can reach a person.
pub const EMAIL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];

/// Tags people put after "+" in their address.
pub const PLUS_TAGS: &[&str] = &["shop", "orders", "promo", "2024"];

/// Street names; a number is put in front.
pub const STREETS: &[&str] = &[
    "Howard St",
    "Market Street",
    "Main St",
    "Oak Avenue",
    "Maple Dr",
    "Elm Street",
    "Queen St W",
    "King's Road",
    "Friedrichstraße",
    "Harbour Blvd",
    "Pine Ln",
    "Cedar Ct",
];

/// Second address lines.
pub const UNITS: &[&str] = &["Apt 4B", "Suite 300", "Unit 12", "Floor 2", "Flat 3"];

/// Street addresses longer than an ERP's 60-character street field.
pub const LONG_STREETS: &[&str] = &[
    "1234 North Very Long Boulevard Extension, Building C, Attn: Receiving Dock 7",
    "Unit 5, The Old Biscuit Factory Industrial Estate, 100 Commercial Road East",
];

/// Companies, for the few business addresses.
pub const COMPANIES: &[&str] = &["Díaz Studio", "Northwind Traders", "Blue Heron Café"];

/// Discount codes: (code, percent off).
pub const DISCOUNT_CODES: &[(&str, u32)] = &[("WELCOME10", 10), ("SPRING15", 15), ("VIP20", 20)];

/// Shipping methods: (title, price). The first is the one the free-shipping discount takes off.
pub const SHIPPING_RATES: &[(&str, &str)] = &[
    ("Standard Shipping", "5.99"),
    ("Standard Shipping", "8.00"),
    ("Express", "19.95"),
];

/// Why staff cancel orders, as Shopify spells it.
pub const CANCEL_REASONS: &[&str] = &["customer", "inventory", "fraud", "declined", "other"];
