//! Payloads in the shape Shopify sends them (REST, API version 2024-10), for the tests.

/// orders/updated for an order that is partly shipped and partly refunded: three lines (one
/// SKU the ERP will not know, one custom item without SKU), a line discount, taxes, shipping,
/// a cancelled and a successful fulfilment, a refund with one failed and one successful
/// transaction, and plenty of fields SyncDesk does not use.
pub(super) const ORDER: &str = r##"{
  "id": 5813623193661,
  "admin_graphql_api_id": "gid://shopify/Order/5813623193661",
  "app_id": 580111,
  "browser_ip": "203.0.113.7",
  "buyer_accepts_marketing": false,
  "cancel_reason": null,
  "cancelled_at": null,
  "checkout_token": "ae0ed4e40b4fe3c339cc9be09ea0d41b",
  "closed_at": null,
  "confirmation_number": "V9ENVL83C",
  "confirmed": true,
  "contact_email": "ana.diaz+shop@example.com",
  "created_at": "2024-10-01T09:15:00-04:00",
  "currency": "USD",
  "current_subtotal_price": "63.50",
  "current_total_price": "76.58",
  "current_total_price_set": {
    "shop_money": {"amount": "76.58", "currency_code": "USD"},
    "presentment_money": {"amount": "76.58", "currency_code": "USD"}
  },
  "customer_locale": "en-US",
  "discount_codes": [{"code": "WELCOME10", "amount": "5.00", "type": "fixed_amount"}],
  "email": "ana.diaz+shop@example.com",
  "estimated_taxes": false,
  "financial_status": "partially_refunded",
  "fulfillment_status": "partial",
  "name": "#1042",
  "note": null,
  "number": 42,
  "order_number": 1042,
  "phone": null,
  "presentment_currency": "USD",
  "processed_at": "2024-10-01T09:15:00-04:00",
  "source_name": "web",
  "subtotal_price": "67.50",
  "subtotal_price_set": {
    "shop_money": {"amount": "67.50", "currency_code": "USD"},
    "presentment_money": {"amount": "67.50", "currency_code": "USD"}
  },
  "tags": "vip, repeat",
  "tax_lines": [{"price": "5.40", "rate": 0.08, "title": "CA State Tax"}],
  "taxes_included": false,
  "test": false,
  "total_discounts": "5.00",
  "total_line_items_price": "72.50",
  "total_outstanding": "0.00",
  "total_price": "80.90",
  "total_price_set": {
    "shop_money": {"amount": "80.90", "currency_code": "USD"},
    "presentment_money": {"amount": "80.90", "currency_code": "USD"}
  },
  "total_tax": "5.40",
  "total_weight": 450,
  "updated_at": "2024-10-03T14:02:11-04:00",
  "billing_address": {
    "first_name": "Ana", "last_name": "Díaz", "name": "Ana Díaz", "company": null,
    "address1": "500 Howard St", "address2": "", "city": "San Francisco",
    "province": "California", "province_code": "CA", "country": "United States",
    "country_code": "US", "zip": "94105", "phone": "(415) 555-0100",
    "latitude": 37.789, "longitude": -122.396
  },
  "shipping_address": {
    "first_name": "Ana", "last_name": "Díaz", "name": "Ana Díaz", "company": "Díaz Studio",
    "address1": "500 Howard St", "address2": "Suite 300", "city": "San Francisco",
    "province": "California", "province_code": "CA", "country": "United States",
    "country_code": "US", "zip": "94105", "phone": "415.555.0100"
  },
  "customer": {
    "id": 7123456789012,
    "email": "Ana.Diaz+Shop@Example.com",
    "created_at": "2023-05-02T10:00:00-04:00",
    "updated_at": "2024-10-01T09:15:01-04:00",
    "first_name": "Ana",
    "last_name": "Díaz",
    "state": "enabled",
    "verified_email": true,
    "phone": "+14155550100",
    "email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in"},
    "tags": "",
    "currency": "USD",
    "admin_graphql_api_id": "gid://shopify/Customer/7123456789012",
    "default_address": {
      "id": 9001, "customer_id": 7123456789012, "first_name": "Ana", "last_name": "Díaz",
      "address1": "500 Howard St", "city": "San Francisco", "province_code": "CA",
      "country_code": "US", "zip": "94105", "phone": "(415) 555-0100", "default": true
    }
  },
  "discount_applications": [
    {"type": "discount_code", "value": "5.0", "value_type": "fixed_amount",
     "allocation_method": "across", "target_selection": "all", "target_type": "line_item",
     "code": "WELCOME10"}
  ],
  "line_items": [
    {
      "id": 13688971493691, "admin_graphql_api_id": "gid://shopify/LineItem/13688971493691",
      "current_quantity": 2, "fulfillable_quantity": 0, "fulfillment_service": "manual",
      "fulfillment_status": "fulfilled", "gift_card": false, "grams": 180,
      "name": "Organic Cotton Tee - Black / M", "price": "25.00",
      "price_set": {"shop_money": {"amount": "25.00", "currency_code": "USD"},
                    "presentment_money": {"amount": "25.00", "currency_code": "USD"}},
      "product_exists": true, "product_id": 8061536829755, "properties": [], "quantity": 2,
      "requires_shipping": true, "sku": "TEE-BLK-M", "taxable": true,
      "title": "Organic Cotton Tee", "total_discount": "0.00", "variant_id": 44001,
      "variant_title": "Black / M", "vendor": "Acme",
      "tax_lines": [
        {"channel_liable": false, "price": "3.60", "rate": 0.08, "title": "CA State Tax"}
      ],
      "discount_allocations": [{"amount": "5.00", "discount_application_index": 0,
        "amount_set": {"shop_money": {"amount": "5.00", "currency_code": "USD"}}}]
    },
    {
      "id": 13688971526459, "current_quantity": 1, "fulfillable_quantity": 1,
      "fulfillment_status": null, "name": "Canvas Tote", "price": "18.50", "quantity": 1,
      "requires_shipping": true, "sku": "NEW-TOTE-01", "title": "Canvas Tote",
      "total_discount": "0.00", "variant_title": null,
      "tax_lines": [{"price": "1.48", "rate": 0.08, "title": "CA State Tax"}],
      "discount_allocations": []
    },
    {
      "id": 13688971559227, "current_quantity": 0, "fulfillable_quantity": 0,
      "fulfillment_status": null, "name": "Gift wrapping", "price": "4.00", "quantity": 1,
      "requires_shipping": false, "sku": "", "title": "Gift wrapping",
      "total_discount": "0.00",
      "tax_lines": [{"price": "0.32", "rate": 0.08, "title": "CA State Tax"}]
    }
  ],
  "shipping_lines": [
    {"id": 4400001, "code": "Standard", "price": "8.00", "discounted_price": "8.00",
     "source": "shopify", "title": "Standard Shipping", "tax_lines": [], "is_removed": false},
    {"id": 4400002, "code": "Express", "price": "20.00", "title": "Express (replaced)",
     "tax_lines": [], "is_removed": true}
  ],
  "fulfillments": [
    {"id": 5500001, "order_id": 5813623193661, "status": "cancelled",
     "created_at": "2024-10-02T08:00:00-04:00",
     "line_items": [{"id": 13688971526459, "quantity": 1}]},
    {"id": 5500002, "order_id": 5813623193661, "status": "success",
     "created_at": "2024-10-02T09:00:00-04:00", "tracking_number": "1Z999AA10123456784",
     "line_items": [{"id": 13688971493691, "quantity": 2, "sku": "TEE-BLK-M"}]}
  ],
  "refunds": [
    {
      "id": 9001001, "order_id": 5813623193661, "created_at": "2024-10-03T14:02:10-04:00",
      "note": "wrapping not needed", "restock": false, "processed_at": "2024-10-03T14:02:10-04:00",
      "refund_line_items": [
        {"id": 77001, "line_item_id": 13688971559227, "quantity": 1, "restock_type": "no_restock",
         "subtotal": 4.0, "total_tax": 0.32,
         "subtotal_set": {"shop_money": {"amount": "4.00", "currency_code": "USD"}}}
      ],
      "transactions": [
        {"id": 66001, "kind": "refund", "status": "failure", "amount": "4.32", "currency": "USD"},
        {"id": 66002, "kind": "refund", "status": "success", "amount": "4.32", "currency": "USD",
         "gateway": "shopify_payments"}
      ],
      "order_adjustments": []
    }
  ]
}"##;

/// refunds/create: one tee returned and restocked; its line amounts are bare JSON numbers,
/// as Shopify writes them.
pub(super) const REFUND: &str = r#"{
  "id": 9001002,
  "order_id": 5813623193661,
  "created_at": "2024-10-05T11:30:00-04:00",
  "note": "damaged in transit",
  "user_id": 1001,
  "processed_at": "2024-10-05T11:30:00-04:00",
  "restock": true,
  "duties": [],
  "admin_graphql_api_id": "gid://shopify/Refund/9001002",
  "refund_line_items": [
    {"id": 77002, "line_item_id": 13688971493691, "location_id": 487838322, "quantity": 1,
     "restock_type": "return", "subtotal": 22.5, "total_tax": 1.8,
     "subtotal_set": {"shop_money": {"amount": "22.50", "currency_code": "USD"},
                      "presentment_money": {"amount": "22.50", "currency_code": "USD"}},
     "line_item": {"id": 13688971493691, "sku": "TEE-BLK-M", "price": "25.00"}}
  ],
  "transactions": [
    {"id": 66003, "order_id": 5813623193661, "kind": "refund", "gateway": "shopify_payments",
     "status": "success", "message": null, "created_at": "2024-10-05T11:30:00-04:00",
     "test": false, "authorization": null, "currency": "USD", "amount": "24.30",
     "parent_id": 66000}
  ],
  "order_adjustments": []
}"#;

/// customers/update: a plus-addressed email with capitals, a US phone without "+1".
pub(super) const CUSTOMER: &str = r#"{
  "id": 7123456789012,
  "email": " Ana.Diaz+Shop@Example.com ",
  "created_at": "2023-05-02T10:00:00-04:00",
  "updated_at": "2024-10-06T08:00:00-04:00",
  "first_name": "Ana",
  "last_name": "Díaz",
  "orders_count": 3,
  "state": "enabled",
  "total_spent": "241.80",
  "note": null,
  "verified_email": true,
  "tax_exempt": false,
  "tags": "vip",
  "currency": "USD",
  "phone": "(415) 555-0100",
  "addresses": [],
  "default_address": {
    "id": 9001, "customer_id": 7123456789012, "first_name": "Ana", "last_name": "Díaz",
    "company": null, "address1": "500 Howard St", "address2": null, "city": "San Francisco",
    "province": "California", "country": "United States", "zip": "94105",
    "phone": "(415) 555-0100", "province_code": "CA", "country_code": "US", "default": true
  }
}"#;
